% if p.state == 'absent':
<p class="muted">{{_('Not available on this system.')}}</p>
% elif p.state == 'failed':
<p class="error">{{_('Could not be read: {error}', error=p.error)}}</p>
% elif isinstance(p.data, dict):
<table class="kv">
% for key, value in p.data.items():
  <tr><th scope="row">{{key.replace('_', ' ')}}</th><td>{{show(value, key)}}</td></tr>
% end
</table>
% elif isinstance(p.data, list) and p.data:
% columns, rows = table(p.data)
<table>
  <thead><tr>
% for key in columns:
    <th scope="col">{{key.replace('_', ' ')}}</th>
% end
  </tr></thead>
  <tbody>
% for row in rows:
  <tr>
% for key in columns:
    <td>{{show(row.get(key), key)}}</td>
% end
  </tr>
% end
  </tbody>
</table>
% elif isinstance(p.data, list):
<p class="muted">{{empty}}</p>
% else:
<p>{{show(p.data)}}</p>
% end
