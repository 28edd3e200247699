% rebase('base', title=title)
<section class="narrow">
<h1>{{_('First start')}}</h1>
<p>{{_('No super administrator exists yet. Enter the one-time setup code to create one. The code is shown on the appliance console and stored in {path}.', path=code_file)}}</p>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="/setup" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <label>{{_('Setup code')}} <input name="code" autocomplete="off" required autofocus></label>
  <label>{{_('User name')}} <input name="username" value="{{username}}" autocomplete="username" required></label>
  <label>{{_('Password')}} <input type="password" name="password" autocomplete="new-password" minlength="10" required></label>
  <label>{{_('Password again')}} <input type="password" name="password2" autocomplete="new-password" minlength="10" required></label>
  <button type="submit">{{_('Create the super administrator')}}</button>
</form>
</section>
