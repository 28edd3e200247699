% rebase('base', title=title)
<h1>{{_('Archive')}}</h1>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="get" action="/archive" class="search card" id="archive-search">
  <label>{{_('From ({zone})', zone=zone)}} <input type="datetime-local" name="since" value="{{since}}"></label>
  <label>{{_('Until ({zone})', zone=zone)}} <input type="datetime-local" name="until" value="{{until}}"></label>
  <label>{{_('Sender')}} <input name="sender" value="{{filters['sender']}}"></label>
  <label>{{_('Recipient')}} <input name="recipient" value="{{filters['recipient']}}"></label>
  <label>{{_('Subject')}} <input name="subject" value="{{filters['subject']}}"></label>
  <label>{{_('Client IP')}} <input name="client_ip" value="{{filters['client_ip']}}"></label>
  <label>{{_('Verdict')}} <select name="verdict">
    <option value="">{{_('any')}}</option>
% for v in verdicts:
    <option value="{{v}}"{{!' selected' if v == verdict else ''}}>{{ {'accept': _('accepted'), 'tag': _('tagged'), 'reject': _('rejected'), 'tempfail': _('tempfailed')}.get(v, v) }}</option>
% end
  </select></label>
  <button type="submit">{{_('Search')}}</button>
</form>
<section class="card">
% if messages:
<table id="archive-results">
  <thead><tr><th scope="col">{{_('Received')}}</th><th scope="col">{{_('Verdict')}}</th><th scope="col">{{_('Score')}}</th><th scope="col">{{_('Client')}}</th><th scope="col">{{_('Sender')}}</th><th scope="col">{{_('Recipients')}}</th><th scope="col">{{_('Subject')}}</th></tr></thead>
  <tbody>
% for m in messages:
    <tr>
      <td><a href="/archive/{{m.id}}">{{when(m.received, zone=True)}}</a></td>
      <td>{{!badge(m.verdict)}}{{!' <span class="tag-released">' + _('released') + '</span>' if released_for(m) else ''}}</td>
      <td class="num">{{'%.1f' % m.score}}</td>
      <td>{{m.client_ip}}</td>
      <td>{{m.mail_from or '<>'}}</td>
      <td>{{', '.join(shown_recipients(m.recipients))}}</td>
      <td class="subject"><a href="/archive/{{m.id}}">{{m.subject or _('(no subject)')}}</a></td>
    </tr>
% end
  </tbody>
</table>
% else:
<p class="muted">{{_('No archived message matches.')}}</p>
% end
% # Outside the table: a domain administrator's recipient search can leave a page empty.
<p class="pager">
% if offset:
  <a href="/archive?{{!urlencode(dict(params, offset=max(0, offset - page_size)))}}">{{_('Newer')}}</a>
% end
% if more:
  <a href="/archive?{{!urlencode(dict(params, offset=offset + page_size))}}">{{_('Older')}}</a>
% end
</p>
</section>
