% rebase('base', title=title)
<p class="crumbs"><a href="/domains">{{_('Domains')}}</a> ›</p>
<h1>{{domain.name}}</h1>
% if error:
<p class="error" role="alert" id="domain-error">{{error}}</p>
% end
% if import_errors:
<ul class="error-lines" id="import-errors">
% for line in import_errors:
  <li>{{line}}</li>
% end
</ul>
% end
% if host_problem:
<p class="warning" id="mail-host-problem">{{_('Internal mail host {host} is not valid ({problem}); please correct it below.', host=str(domain.mail_host), problem=host_problem)}}</p>
% end
% if defers_all:
<p class="warning" id="list-empty">{{_('This domain accepts only the recipients on its valid-address list, and the list is empty: the gateway defers all its mail (451 Temporary lookup failure) until an address is added or SMTP validation is turned on. Senders retry for a few days, then return the mail to its senders.')}}</p>
% end
<div class="columns">
<section class="card">
<h2>{{_('Delivery and filtering')}}</h2>
<form method="post" action="/domains/{{domain.name}}" class="stack" id="domain-settings">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Internal mail host (host or IP, optional :port)')}} <input name="mail_host" value="{{host_text}}" required></label>
% if not user.is_super:
  <p class="muted" id="mail-host-ports">{{_('Port {ports} (25 when none is given); the administrator of the appliance may set another.', ports=ports)}}</p>
% end
  <label class="check"><input type="checkbox" name="filtering"{{!' checked' if switches['filtering'] else ''}}> {{_('Filter this domain\'s mail')}}</label>
  <label class="check"><input type="checkbox" name="smtp_validation"{{!' checked' if switches['smtp_validation'] else ''}}> {{_('SMTP validation: ask the internal host whether a recipient exists')}}</label>
  <label class="check"><input type="checkbox" name="reject_non_validated"{{!' checked' if switches['reject_non_validated'] else ''}}> {{_('Reject recipients that could not be validated')}}</label>
  <button type="submit">{{_('Update')}}</button>
</form>
% if user.is_super:
<h3>{{_('Domain administrators')}}</h3>
<p>{{', '.join(a.name for a in admins) or _('none')}} · <a href="/users">{{_('Users')}}</a></p>
% end
</section>
<section class="card">
<h2>{{_('Valid addresses')}} <span class="muted">({{count}})</span></h2>
<p class="muted">{{_('Paste one address per line. Names and angle brackets are removed: "Jane Doe" <jane@example.com> becomes jane@example.com. Lines starting with # are ignored. If any line cannot be used, nothing is stored and the lines are listed.')}}</p>
<p class="muted" id="paste-limit">{{_('At most {lines} lines and {size} per paste: paste a longer list in parts, or import it on the appliance with portcullis valid import {domain} FILE.', lines=f'{max_lines:,}', size=max_size, domain=domain.name)}}</p>
<form method="post" action="/domains/{{domain.name}}/addresses" class="stack" id="paste-addresses">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <textarea name="addresses" rows="8" spellcheck="false" placeholder="user@{{domain.name}}">{{pasted}}</textarea>
  <label class="check"><input type="checkbox" name="replace"> {{_('Replace the whole list (otherwise the addresses are added)')}}</label>
  <button type="submit">{{_('Update')}}</button>
</form>
</section>
</div>
<section class="card">
<h2>{{_('Listed addresses')}}</h2>
<form method="get" action="/domains/{{domain.name}}" class="row">
  <input name="filter" value="{{filter}}" placeholder="{{_('Filter')}}" aria-label="{{_('Filter')}}">
  <button type="submit">{{_('Show')}}</button>
</form>
% if addresses:
<table id="address-list">
  <tbody>
% for address in addresses:
    <tr><td>{{address}}</td><td class="actions">
      <form method="post" action="/domains/{{domain.name}}/addresses/remove" class="inline">
        <input type="hidden" name="csrf_token" value="{{csrf}}">
        <input type="hidden" name="address" value="{{address}}">
        <button type="submit" class="link danger">{{_('Remove')}}</button>
      </form></td></tr>
% end
  </tbody>
</table>
% if more:
<p class="muted">{{_('Only the first {count} are shown; use the filter.', count=len(addresses))}}</p>
% end
% else:
<p class="muted">{{_('No valid addresses listed.')}}</p>
% end
</section>
% if user.is_super:
<section class="card narrow danger-zone">
<h2>{{_('Stop protecting this domain')}}</h2>
<form method="post" action="/domains/{{domain.name}}/remove" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Type the domain name to confirm')}} <input name="confirm" autocomplete="off"></label>
  <button type="submit" class="danger">{{_('Remove domain')}}</button>
</form>
</section>
% end
