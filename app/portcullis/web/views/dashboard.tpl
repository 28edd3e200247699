% rebase('base', title=title)
<h1>{{_('Dashboard')}}</h1>
% if not user.is_super:
<p class="muted">{{_('Figures for your domains: {domains}', domains=', '.join(user.domains) or '-')}}</p>
% end
<section class="card" id="traffic">
  <div class="card-head">
    <h2>{{_('Traffic by verdict')}}</h2>
    <nav class="tabs" aria-label="{{_('Time range')}}">
% for name in ranges:
      <a href="/?range={{name}}"{{!' class="active" aria-current="true"' if name == range_name else ''}}>{{ {'24h': _('24 hours'), '7d': _('7 days'), '30d': _('30 days')}[name] }}</a>
% end
    </nav>
  </div>
  {{!chart}}
  <table class="totals">
    <tr>
% for verdict, count in totals.items():
      <th scope="col">{{labels.get(verdict, verdict)}}</th>
% end
    </tr>
    <tr>
% for verdict, count in totals.items():
      <td class="num" id="total-{{verdict}}">{{count}}</td>
% end
    </tr>
  </table>
</section>
<div class="columns">
<section class="card" id="sessions">
  <h2>{{_('Current SMTP sessions')}}</h2>
% if gateway.running:
  <p class="big"><span id="session-count">{{gateway.active}}</span> <span class="muted">/ {{gateway.max_sessions}}</span></p>
  <p class="muted">{{_('{workers} gateway worker(s); {refused} connection(s) turned away (busy) since they started.', workers=gateway.workers, refused=gateway.refused)}}</p>
% if user.is_super and gateway.clients:
  <table>
    <thead><tr><th scope="col">{{_('Client')}}</th><th scope="col">{{_('Sessions')}}</th></tr></thead>
    <tbody>
% for ip, count in gateway.clients:
      <tr><td>{{ip}}</td><td class="num">{{count}}</td></tr>
% end
    </tbody>
  </table>
% end
% else:
  <p class="error">{{_('The SMTP gateway is not running (no live figures).')}}</p>
% end
</section>
<section class="card" id="antivirus">
  <h2>{{_('Antivirus (ClamAV)')}}</h2>
% include('clamav', p=clamav, full=False)
</section>
</div>
<section class="card" id="latest">
  <h2>{{_('Latest messages')}}</h2>
% if latest:
  <table>
    <thead><tr><th scope="col">{{_('Received')}}</th><th scope="col">{{_('Verdict')}}</th><th scope="col">{{_('Sender')}}</th><th scope="col">{{_('Recipients')}}</th><th scope="col">{{_('Subject')}}</th></tr></thead>
    <tbody>
% for m in latest:
      <tr><td><a href="/archive/{{m.id}}">{{when(m.received)}}</a></td><td>{{!badge(m.verdict)}}</td><td>{{m.mail_from or '<>'}}</td><td>{{', '.join(shown_recipients(m.recipients))}}</td><td>{{m.subject}}</td></tr>
% end
    </tbody>
  </table>
% else:
  <p class="muted">{{_('No messages yet.')}}</p>
% end
</section>
