% # The update history (portcullis.update.history): p is its Panel.
% rows = [r for r in p.data if isinstance(r, dict)] if p.state == 'ok' and isinstance(p.data, list) else None
% if rows is None or (rows and 'outcome' not in rows[0]):
% include('panel', p=p, empty=_('No update has been attempted yet.'))
% elif not rows:
<p class="muted">{{_('No update has been attempted yet.')}}</p>
% else:
% outcomes = {'receiving': _('receiving'), 'applied': _('applied'), 'rejected': _('rejected'), 'rolled-back': _('rolled back'), 'failed': _('failed')}
<table class="update-history">
  <thead><tr><th scope="col">{{_('Started')}}</th><th scope="col">{{_('From')}}</th><th scope="col">{{_('Update')}}</th><th scope="col">{{_('Outcome')}}</th><th scope="col">{{_('Reason')}}</th><th scope="col">{{_('Signed by')}}</th></tr></thead>
  <tbody>
% for r in rows:
    <tr data-outcome="{{r.get('outcome', '')}}">
      <td>{{show(r.get('started'), 'started')}}</td><td>{{r.get('client', '')}}</td>
      <td>{{r.get('target') or '-'}} {{r.get('version') or ''}}{{(' ' + _('(was {previous})', previous=r['previous'])) if r.get('previous') else ''}}</td>
      <td><span class="outcome outcome-{{r.get('outcome', '')}}">{{outcomes.get(r.get('outcome'), r.get('outcome', ''))}}</span></td>
      <td class="reason">{{r.get('reason', '')}}</td><td><code>{{r.get('signed_by', '')}}</code></td>
    </tr>
% end
  </tbody>
</table>
% end
