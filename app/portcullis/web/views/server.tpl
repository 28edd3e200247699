% rebase('base', title=title)
<h1>{{_('Server admin')}}</h1>
<div class="columns">
<section class="card" id="clamav">
  <h2>{{_('Antivirus (ClamAV)')}}</h2>
% include('panel', p=clamav, empty='')
% if can_update:
  <form method="post" action="/server/clamav-update" class="row">
    <input type="hidden" name="csrf_token" value="{{csrf}}">
    <button type="submit">{{_('Update signatures now')}}</button>
  </form>
% end
</section>
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
</div>
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
% include('panel', p=updates, empty=_('No update has been attempted yet.'))
</section>
<section class="card" id="firewall">
  <h2>{{_('Firewall: blocked sources')}}</h2>
% include('panel', p=firewall, empty=_('Nothing is blocked.'))
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
