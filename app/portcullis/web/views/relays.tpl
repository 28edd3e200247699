% rebase('base', title=title)
<h1>{{_('Relays')}}</h1>
<p class="muted">{{_('Internal networks (mail servers, cluster nodes) allowed to send outbound mail through the gateway.')}}</p>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<section class="card">
% if relays:
<table id="relay-list">
  <thead><tr><th scope="col">{{_('Network')}}</th><th scope="col">{{_('Note')}}</th><th scope="col">{{_('Added')}}</th><th></th></tr></thead>
  <tbody>
% for r in relays:
    <tr><td>{{r['network']}}</td><td>{{r['note']}}</td><td>{{when(r['created'])}}</td><td class="actions">
      <form method="post" action="/relays/remove" class="inline">
        <input type="hidden" name="csrf_token" value="{{csrf}}">
        <input type="hidden" name="network" value="{{r['network']}}">
        <button type="submit" class="link danger">{{_('Remove')}}</button>
      </form></td></tr>
% end
  </tbody>
</table>
% else:
<p class="muted">{{_('No relays.')}}</p>
% end
</section>
<section class="card narrow">
<h2>{{_('Add a relay')}}</h2>
<form method="post" action="/relays" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('IP address or network (CIDR)')}} <input name="network" value="{{form.get('network', '')}}" placeholder="10.0.1.0/24" required></label>
  <label>{{_('Note')}} <input name="note" value="{{form.get('note', '')}}"></label>
  <button type="submit">{{_('Add relay')}}</button>
</form>
</section>
