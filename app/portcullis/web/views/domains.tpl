% rebase('base', title=title)
<h1>{{_('Domains')}}</h1>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<section class="card">
% if domains:
<table id="domain-list">
  <thead><tr><th scope="col">{{_('Domain')}}</th><th scope="col">{{_('Internal mail host')}}</th><th scope="col">{{_('Filtering')}}</th><th scope="col">{{_('SMTP validation')}}</th><th scope="col">{{_('Reject non-validated')}}</th><th scope="col">{{_('Valid addresses')}}</th></tr></thead>
  <tbody>
% for d in domains:
    <tr>
      <td><a href="/domains/{{d.name}}">{{d.name}}</a></td>
      <td>{{str(d.mail_host)}}</td>
      <td>{{_('on') if d.filtering else _('off')}}</td>
      <td>{{_('on') if d.smtp_validation else _('off')}}</td>
      <td>{{_('on') if d.reject_non_validated else _('off')}}</td>
      <td class="num">{{counts[d.name]}}</td>
    </tr>
% end
  </tbody>
</table>
% else:
<p class="muted">{{_('No protected domains yet.')}}</p>
% end
</section>
% if user.is_super:
<section class="card narrow">
<h2>{{_('Protect a domain')}}</h2>
<form method="post" action="/domains" class="stack" id="add-domain">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Domain name')}} <input name="name" value="{{form.get('name', '')}}" placeholder="example.com" required></label>
  <label>{{_('Internal mail host (host or IP, optional :port)')}} <input name="mail_host" value="{{form.get('mail_host', '')}}" placeholder="10.0.1.2:25" required></label>
  <label class="check"><input type="checkbox" name="filtering" checked> {{_('Filter this domain\'s mail')}}</label>
  <label class="check"><input type="checkbox" name="smtp_validation" checked> {{_('SMTP validation: ask the internal host whether a recipient exists')}}</label>
  <label class="check"><input type="checkbox" name="reject_non_validated" checked> {{_('Reject recipients that could not be validated')}}</label>
  <button type="submit">{{_('Add domain')}}</button>
</form>
</section>
% end
