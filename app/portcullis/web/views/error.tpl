% rebase('base', title=title)
<h1>{{title}}</h1>
<p class="error" id="error-text">{{text}}</p>
<p><a href="/">{{_('Back to the dashboard')}}</a></p>
