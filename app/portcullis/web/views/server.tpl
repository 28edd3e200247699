% rebase('base', title=title)
<h1>{{_('Server admin')}}</h1>
<section class="card" id="gateway">
  <h2>{{_('SMTP gateway')}}</h2>
% if gateway.running:
  <p>{{_('Running: {workers} worker(s), {active} open session(s) of {max} allowed; last report {time}.', workers=gateway.workers, active=gateway.active, max=gateway.max_sessions, time=when(gateway.updated))}}</p>
% else:
  <p class="error">{{_('The SMTP gateway is not running (no live figures).')}}</p>
% end
% if disk:
  <p>{{_('State directory {path}: {free} free of {total}.', path=state_dir, free=size(disk.free), total=size(disk.total))}}</p>
% end
</section>
<section class="card" id="clamav">
  <h2>{{_('Antivirus (ClamAV)')}}</h2>
% include('clamav', p=clamav, full=True)
% if can_update:
  <form method="post" action="/server/clamav-update" class="row">
    <input type="hidden" name="csrf_token" value="{{csrf}}">
    <button type="submit">{{_('Update signatures now')}}</button>
  </form>
% end
</section>
<section class="card" id="services">
  <h2>{{_('Services')}}</h2>
% if units is None:
  <p class="muted">{{_('Not available on this system.')}} {{_('(systemd is not the init system here)')}}</p>
% else:
  <table>
    <thead><tr><th scope="col">{{_('Service')}}</th><th scope="col">{{_('State')}}</th><th scope="col">{{_('Since')}}</th></tr></thead>
    <tbody>
% for u in units:
      <tr><td>{{u.get('Id', '')}} <span class="muted">{{u.get('Description', '')}}</span></td><td class="state-{{u.get('ActiveState', '')}}">{{u.get('ActiveState', '')}} ({{u.get('SubState', '')}})</td><td>{{u.get('ActiveEnterTimestamp', '')}}</td></tr>
% end
    </tbody>
  </table>
% end
</section>
<section class="card" id="update-history">
  <h2>{{_('Update history')}}</h2>
% include('updates', p=updates)
</section>
<section class="card" id="firewall">
  <h2>{{_('Firewall')}}</h2>
% fw = firewall.data if firewall.state == 'ok' and isinstance(firewall.data, dict) else None
% if fw is not None and 'ssh_blocked' in fw:
  <p>{{_('The ruleset is loaded.') if fw.get('loaded') else _('The ruleset is not loaded.')}}</p>
<div class="columns">
% for key, heading in (('ssh_blocked', _('Blocked SSH sources')), ('scanners', _('Scanners held in the tarpit'))):
  <div id="fw-{{key}}">
  <h3>{{heading}}</h3>
% if fw.get(key):
  <table>
    <thead><tr><th scope="col">{{_('Source')}}</th><th scope="col">{{_('Expires in')}}</th><th></th></tr></thead>
    <tbody>
% for entry in fw[key]:
      <tr><td>{{entry.get('address', '')}}</td><td>{{duration(entry.get('expires')) or _('never')}}</td><td class="actions">
% if can_block:
        <form method="post" action="/server/firewall/unblock" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <input type="hidden" name="address" value="{{entry.get('address', '')}}">
          <button type="submit" class="link">{{_('Unblock')}}</button>
        </form>
% end
      </td></tr>
% end
    </tbody>
  </table>
% else:
  <p class="muted">{{_('Nothing is blocked.')}}</p>
% end
  </div>
% end
</div>
% if can_block:
  <form method="post" action="/server/firewall/block" class="row">
    <input type="hidden" name="csrf_token" value="{{csrf}}">
    <input name="address" placeholder="{{_('IP address')}}" aria-label="{{_('IP address')}}" required>
    <input type="number" name="minutes" min="1" step="1" placeholder="{{_('minutes')}}" aria-label="{{_('minutes')}}">
    <button type="submit">{{_('Block from SSH')}}</button>
  </form>
% end
% if fw.get('counters'):
  <h3>{{_('Counters')}}</h3>
  <table>
    <thead><tr><th scope="col">{{_('Counter')}}</th><th scope="col" class="num">{{_('Packets')}}</th><th scope="col" class="num">{{_('Bytes')}}</th><th scope="col">{{_('Meaning')}}</th></tr></thead>
    <tbody>
% for c in fw['counters']:
      <tr><td><code>{{c.get('name', '')}}</code></td><td class="num">{{c.get('packets', '')}}</td><td class="num">{{c.get('bytes', '')}}</td><td>{{c.get('comment', '')}}</td></tr>
% end
    </tbody>
  </table>
% end
% else:
% include('panel', p=firewall, empty=_('Nothing is blocked.'))
% end
</section>
<div class="columns">
<section class="card" id="admins">
  <h2>{{_('Logged-in administrators')}}</h2>
  <table>
    <thead><tr><th scope="col">{{_('User')}}</th><th scope="col">{{_('From')}}</th><th scope="col">{{_('Since')}}</th><th scope="col">{{_('Last seen')}}</th></tr></thead>
    <tbody>
% for s in admins:
      <tr><td>{{s['user']}}</td><td>{{s['client_ip']}}</td><td>{{when(s['created'])}}</td><td>{{when(s['last_seen'])}}</td></tr>
% end
    </tbody>
  </table>
</section>
<section class="card" id="audit">
  <h2>{{_('Recent administrative actions')}}</h2>
  <table>
    <thead><tr><th scope="col">{{_('Time')}}</th><th scope="col">{{_('User')}}</th><th scope="col">{{_('Action')}}</th><th scope="col">{{_('Detail')}}</th></tr></thead>
    <tbody>
% for a in trail:
      <tr><td>{{when(a['at'])}}</td><td>{{a['user']}} <span class="muted">{{a['client_ip']}}</span></td><td>{{a['action']}}</td><td>{{a['detail']}}</td></tr>
% end
    </tbody>
  </table>
</section>
</div>
