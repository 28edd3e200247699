% rebase('base', title=title)
<h1>{{_('Users')}}</h1>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<section class="card">
<table id="user-list">
  <thead><tr><th scope="col">{{_('User')}}</th><th scope="col">{{_('Role')}}</th><th scope="col">{{_('Domains')}}</th><th scope="col">{{_('Password')}}</th><th scope="col">{{_('Change')}}</th></tr></thead>
  <tbody>
% for u in users:
    <tr>
      <td>{{u.name}}</td>
      <td>{{_('super administrator') if u.is_super else _('domain administrator')}}</td>
      <td>
% if u.is_super:
        {{_('all')}}
% else:
        <form method="post" action="/users/{{u.name}}/domains" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <select name="domains" multiple size="{{min(4, max(2, len(domains)))}}" aria-label="{{_('Domains of {name}', name=u.name)}}">
% for d in domains:
            <option value="{{d}}"{{!' selected' if d in u.domains else ''}}>{{d}}</option>
% end
          </select>
          <button type="submit" class="small">{{_('Set domains')}}</button>
        </form>
% end
      </td>
      <td>{{_('set') if u.has_password else _('not set')}}</td>
      <td class="actions">
        <form method="post" action="/users/{{u.name}}/password" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <input type="password" name="password" placeholder="{{_('New password')}}" aria-label="{{_('New password for {name}', name=u.name)}}" autocomplete="new-password" minlength="10" required>
          <input type="password" name="password2" placeholder="{{_('Again')}}" aria-label="{{_('New password again')}}" autocomplete="new-password" minlength="10" required>
          <button type="submit" class="small">{{_('Set password')}}</button>
        </form>
        <form method="post" action="/users/{{u.name}}/remove" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <button type="submit" class="link danger">{{_('Remove')}}</button>
        </form>
      </td>
    </tr>
% end
  </tbody>
</table>
</section>
<section class="card narrow">
<h2>{{_('Add an administrator')}}</h2>
<form method="post" action="/users" class="stack" id="add-user">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('User name')}} <input name="name" value="{{form.get('name', '')}}" required></label>
  <label>{{_('Role')}} <select name="role">
    <option value="domain"{{!' selected' if form.get('role', 'domain') == 'domain' else ''}}>{{_('domain administrator')}}</option>
    <option value="super"{{!' selected' if form.get('role') == 'super' else ''}}>{{_('super administrator')}}</option>
  </select></label>
  <label>{{_('Domains (for a domain administrator)')}} <select name="domains" multiple size="{{min(6, max(2, len(domains)))}}">
% for d in domains:
    <option value="{{d}}">{{d}}</option>
% end
  </select></label>
  <label>{{_('Password')}} <input type="password" name="password" autocomplete="new-password" minlength="10" required></label>
  <label>{{_('Password again')}} <input type="password" name="password2" autocomplete="new-password" minlength="10" required></label>
  <button type="submit">{{_('Add user')}}</button>
</form>
</section>
