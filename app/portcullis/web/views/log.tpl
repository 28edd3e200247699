% rebase('base', title=title)
<h1>{{_('Log')}}</h1>
% if source:
<p class="muted">{{_('The last decisions from {file}.', file=source)}}</p>
% else:
<p class="muted">{{_('The last decisions about mail for your domains.')}}</p>
% end
<form method="get" action="/log" class="row">
  <input name="grep" value="{{grep}}" placeholder="{{_('Only lines containing')}}" aria-label="{{_('Only lines containing')}}">
  <select name="lines" aria-label="{{_('Lines')}}">
% for n in choices:
    <option value="{{n}}"{{!' selected' if n == count else ''}}>{{n}}</option>
% end
  </select>
  <button type="submit">{{_('Show')}}</button>
</form>
% if lines:
<pre class="log" id="log-lines">
% for line in lines:
{{line}}
% end
</pre>
% elif grep:
<p class="muted" id="log-none">{{_('No line of the last decisions contains {text}.', text=grep)}}</p>
% else:
<p class="muted" id="log-none">{{_('No decisions logged yet.')}}</p>
% end
