% rebase('base', title=title)
<h1>{{_('Reports')}}</h1>
<section class="card" id="traffic-report">
  {{!chart}}
  <table class="totals">
    <tr>
% for verdict, count in totals.items():
      <th scope="col">{{labels.get(verdict, verdict)}}</th>
% end
    </tr>
    <tr>
% for verdict, count in totals.items():
      <td class="num">{{count}}</td>
% end
    </tr>
  </table>
</section>
% for heading, p, svg in tops:
<section class="card top-list">
<h2>{{heading}}</h2>
% if svg:
{{!svg}}
% end
% include('panel', p=p, empty=_('No MTA qualifies yet: an MTA needs 50 or more connections, 95% or more of them of one kind.'))
</section>
% end
