% rebase('base', title=title)
<section class="narrow">
<h1>{{_('Log in')}}</h1>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="/login" class="stack">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
  <input type="hidden" name="next" value="{{next}}">
  <label>{{_('User name')}} <input name="username" value="{{username}}" autocomplete="username" required autofocus></label>
  <label>{{_('Password')}} <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit">{{_('Log in')}}</button>
</form>
</section>
