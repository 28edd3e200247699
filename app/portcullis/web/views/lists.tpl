% rebase('base', title=title)
<h1>{{_('Black/White lists')}}</h1>
<p class="warning">{{_('These lists affect every protected domain. A black-listed sender is rejected for everyone; a white-listed one is accepted (viruses and unwanted attachments aside).')}}</p>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<div class="columns">
% for kind, heading in (('black', _('Black list')), ('white', _('White list'))):
<section class="card" id="{{kind}}-list">
<h2>{{heading}}</h2>
<form method="post" action="/lists/{{kind}}" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Domain, address, IP address or network')}} <input name="entry" value="{{form.get('entry', '') if error_kind == kind else ''}}" placeholder="pushysender.com" required></label>
  <label>{{_('Note')}} <input name="note"></label>
  <button type="submit">{{_('Add to the black list') if kind == 'black' else _('Add to the white list')}}</button>
</form>
% if entries[kind]:
<table>
  <thead><tr><th scope="col">{{_('Entry')}}</th><th scope="col">{{_('Note')}}</th><th></th></tr></thead>
  <tbody>
% for e in entries[kind]:
    <tr><td>{{e['entry']}}</td><td>{{e['note']}}</td><td class="actions">
      <form method="post" action="/lists/{{kind}}/remove" class="inline">
        <input type="hidden" name="csrf_token" value="{{csrf}}">
        <input type="hidden" name="entry" value="{{e['entry']}}">
        <button type="submit" class="link danger">{{_('Remove')}}</button>
      </form></td></tr>
% end
  </tbody>
</table>
% else:
<p class="muted">{{_('Empty.')}}</p>
% end
</section>
% end
</div>
