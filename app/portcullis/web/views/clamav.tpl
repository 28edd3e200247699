% # ClamAV's status (portcullis.antivirus.status): p is its Panel; full adds the database files.
% s = p.data if p.state == 'ok' and isinstance(p.data, dict) and {'reachable', 'databases'} <= set(p.data) else None
% if s is None:
% include('panel', p=p, empty='')
% else:
% kinds = {'official': _('official (freshclam)'), 'starter': _('starter (shipped with the image)'), 'other': _('other (local or pushed)'), 'none': _('none')}
<table class="kv clamav-status">
  <tr><th scope="row">{{_('clamd')}}</th><td class="{{'state-active' if s.get('reachable') else 'state-failed'}}">{{_('answering') if s.get('reachable') else _('not answering')}}{{(': ' + s['error']) if s.get('error') else ''}}</td></tr>
  <tr><th scope="row">{{_('Virus scanning')}}</th><td>{{_('on') if s.get('enabled') else _('off')}}</td></tr>
% if s.get('engine'):
  <tr><th scope="row">{{_('Engine')}}</th><td>ClamAV {{s['engine']}}</td></tr>
% end
  <tr><th scope="row">{{_('Signatures loaded')}}</th><td>{{_('daily {version} of {date}', version=s['signature_version'], date=s.get('signature_date') or '?') if s.get('signature_version') else _('no official daily database')}}</td></tr>
  <tr><th scope="row">{{_('Protected by')}}</th><td>{{kinds.get(s.get('source'), s.get('source', ''))}}</td></tr>
% if full:
  <tr><th scope="row">{{_('clamd socket')}}</th><td><code>{{s.get('address', '')}}</code></td></tr>
% end
</table>
% for warning in s.get('warnings') or []:
<p class="warning">{{warning}}</p>
% end
% if full:
<h3>{{_('Database files')}}</h3>
% if s.get('databases'):
<table class="clamav-databases">
  <thead><tr><th scope="col">{{_('File')}}</th><th scope="col">{{_('Kind')}}</th><th scope="col" class="num">{{_('Version')}}</th><th scope="col" class="num">{{_('Signatures')}}</th><th scope="col">{{_('Built')}}</th><th scope="col" class="num">{{_('Size')}}</th><th scope="col">{{_('Installed')}}</th></tr></thead>
  <tbody>
% for d in s['databases']:
    <tr><td><code>{{d.get('name', '')}}</code></td><td>{{kinds.get(d.get('kind'), d.get('kind', ''))}}</td><td class="num">{{show(d.get('version'))}}</td><td class="num">{{show(d.get('signatures'))}}</td><td>{{d.get('built') or ''}}</td><td class="num">{{size(d.get('size') or 0)}}</td><td>{{when(d.get('modified'))}}</td></tr>
% end
  </tbody>
</table>
% else:
<p class="muted">{{_('No signature database is installed.')}}</p>
% end
% end
% end
