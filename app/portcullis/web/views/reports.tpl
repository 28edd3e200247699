% rebase('base', title=title)
<h1>{{_('Reports')}}</h1>
<section class="card" id="traffic-report">
% if domains is not None:
  <p class="muted" id="report-scope">{{_('Traffic of your domains only: {domains}.', domains=', '.join(domains) or '-')}}</p>
% end
  {{!chart}}
  <table class="totals">
    <tr>
% for verdict, count in totals.items():
      <th scope="col">{{labels.get(verdict, verdict)}}</th>
% end
    </tr>
    <tr>
% for verdict, count in totals.items():
      <td class="num" id="report-total-{{verdict}}">{{count}}</td>
% end
    </tr>
  </table>
</section>
% for top in tops:
<section class="card top-list" id="{{top.key}}">
<h2>{{top.heading}}</h2>
% if top.rows:
{{!top.chart}}
<table>
  <thead><tr>
    <th scope="col" class="num">#</th><th scope="col">{{_('MTA address')}}</th>
    <th scope="col" class="num">{{_('Connections')}}</th><th scope="col" class="num">{{top.share_label}}</th>
    <th scope="col" class="num">{{_('Tagged')}}</th><th scope="col" class="num">{{_('Rejected')}}</th>
    <th scope="col">{{_('First seen')}}</th><th scope="col">{{_('Last seen')}}</th>
  </tr></thead>
  <tbody>
% for rank, row in enumerate(top.rows, 1):
    <tr>
      <td class="num">{{rank}}</td><td class="address">{{row.get('address') or row.get('ip') or row.get('network') or ''}}</td>
      <td class="num connections">{{show(row.get('connections'))}}</td>
      <td class="num">{{percent(row.get(top.share))}}</td>
      <td class="num">{{show(row.get('tagged'))}}</td><td class="num">{{show(row.get('rejected'))}}</td>
      <td>{{show(row.get('first_seen'), 'first_seen')}}</td><td>{{show(row.get('last_seen'), 'last_seen')}}</td>
    </tr>
% end
  </tbody>
</table>
% else:
% include('panel', p=top.found, empty=_('No MTA qualifies yet: an MTA needs 50 or more connections, 95% or more of them of one kind.'))
% end
</section>
% end
