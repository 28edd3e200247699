% rebase('base', title=title)
<h1>{{_('My account')}}</h1>
<p>{{_('Logged in as {name}.', name=user.name)}}
% if not user.is_super:
{{_('You manage: {domains}', domains=', '.join(user.domains) or '-')}}
% end
</p>
<section class="card narrow">
<h2>{{_('Change my password')}}</h2>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="/account/password" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Current password')}} <input type="password" name="current" autocomplete="current-password" required></label>
  <label>{{_('New password')}} <input type="password" name="password" autocomplete="new-password" minlength="10" required></label>
  <label>{{_('New password again')}} <input type="password" name="password2" autocomplete="new-password" minlength="10" required></label>
  <button type="submit">{{_('Change password')}}</button>
</form>
</section>
