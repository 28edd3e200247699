% rebase('base', title=title)
<h1>{{_('Settings')}}</h1>
<p class="muted">{{_('Policy settings take effect within a second, without a restart.')}}</p>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="/settings" class="card settings" id="settings-form">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
% for row in rows:
  <div class="setting">
% if row['input'] == 'checkbox':
    <label class="check"><input type="checkbox" name="{{row['name']}}"{{!' checked' if row['checked'] else ''}}> <code>{{row['name']}}</code></label>
% elif row['input'] == 'textarea':
    <label for="s-{{row['name']}}"><code>{{row['name']}}</code></label>
    <textarea id="s-{{row['name']}}" name="{{row['name']}}" rows="4" spellcheck="false">{{row['text']}}</textarea>
% elif row['input'] == 'select':
    <label for="s-{{row['name']}}"><code>{{row['name']}}</code></label>
    <select id="s-{{row['name']}}" name="{{row['name']}}">
% for choice in row['choices']:
      <option value="{{choice}}"{{!' selected' if choice == row['text'] else ''}}>{{choice}}</option>
% end
    </select>
% elif row['input'] == 'number':
    <label for="s-{{row['name']}}"><code>{{row['name']}}</code></label>
    <input id="s-{{row['name']}}" type="number" name="{{row['name']}}" value="{{row['text']}}" step="{{row['step']}}"{{!(' min="%g"' % row['min']) if row['min'] is not None else ''}}{{!(' max="%g"' % row['max']) if row['max'] is not None else ''}}>
% else:
    <label for="s-{{row['name']}}"><code>{{row['name']}}</code></label>
    <input id="s-{{row['name']}}" name="{{row['name']}}" value="{{row['text']}}">
% end
    <p class="help">{{_(row['help'])}}</p>
  </div>
% end
  <button type="submit">{{_('Save settings')}}</button>
</form>
