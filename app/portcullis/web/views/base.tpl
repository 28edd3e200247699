<!DOCTYPE html>
<html lang="{{lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title + ' · ' if title else ''}}Portcullis</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<header class="top">
  <a class="brand" href="/"><img src="/static/favicon.svg" alt="" width="22" height="22"> Portcullis</a>
% if user:
  <nav class="menu" aria-label="{{_('Main menu')}}">
% for href, label, active in nav:
    <a href="{{href}}"{{!' class="active" aria-current="page"' if active else ''}}>{{label}}</a>
% end
  </nav>
  <div class="who">
    <a href="/account" title="{{_('My account')}}">{{user.name}}</a>
    <span class="role">{{_('super administrator') if user.is_super else _('domain administrator')}}</span>
    <form method="post" action="/logout" class="inline">
      <input type="hidden" name="csrf_token" value="{{csrf}}">
      <button type="submit" class="link">{{_('Log out')}}</button>
    </form>
  </div>
% end
</header>
<main>
% for level, text in flash_messages:
<p class="flash flash-{{level}}" role="status">{{text}}</p>
% end
{{!base}}
</main>
<footer>Portcullis {{version}}</footer>
</body>
</html>
