% rebase('base', title=title)
<p class="crumbs"><a href="/archive">{{_('Archive')}}</a> ›</p>
<h1 class="subject" id="message-subject">{{message.subject or _('(no subject)')}}</h1>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<div class="columns">
<section class="card">
<h2>{{_('Envelope and verdict')}}</h2>
<table class="kv">
  <tr><th scope="row">{{_('Message id')}}</th><td>{{message.id}}</td></tr>
  <tr><th scope="row">{{_('Received')}}</th><td>{{when(message.received, zone=True)}} ({{message.direction}})</td></tr>
  <tr><th scope="row">{{_('Client')}}</th><td>{{message.client_ip}} "{{message.helo}}"</td></tr>
  <tr><th scope="row">{{_('Sender')}}</th><td>{{message.mail_from or '<>'}}</td></tr>
  <tr><th scope="row">{{_('Recipients')}}</th><td>{{', '.join(shown_recipients(message.recipients))}}</td></tr>
  <tr><th scope="row">{{_('Verdict')}}</th><td id="message-verdict">{{!badge(message.verdict)}} {{hide_recipients(message.reason, message.recipients)}}</td></tr>
  <tr><th scope="row">{{_('Score')}}</th><td>{{'%.2f' % message.score}}</td></tr>
  <tr><th scope="row">{{_('Size')}}</th><td>{{size(message.size)}}</td></tr>
  <tr><th scope="row">{{_('Delivery')}}</th><td id="message-delivery">{{delivery}}</td></tr>
% if released:
  <tr><th scope="row">{{_('Released')}}</th><td>{{when(released, zone=True)}}</td></tr>
% end
</table>
% if releasable and message.kept_back:
<form method="post" action="/archive/{{message.id}}/release" class="row" id="release">
  <input type="hidden" name="csrf_token" value="{{csrf}}">
% if pending:
  <button type="submit">{{_('Release to {recipients}', recipients=', '.join(pending))}}</button>
% else:
  <input type="hidden" name="again" value="1">
  <button type="submit">{{_('Release again to {recipients}', recipients=', '.join(releasable))}}</button>
% end
</form>
% if message.deferred:
<p class="error" id="release-deferred">{{_('The sending server was told to try again later and normally sends this message again by itself: released now as well, it may arrive twice.')}}</p>
% end
<p class="muted">{{_('Release delivers the archived copy to the internal mail host now. It does not teach the filter anything.')}}</p>
% end
% if virus_kept:
<p class="muted" id="release-virus">{{_('Only the super administrator may release or download a message rejected as a virus.')}}</p>
% else:
<p><a href="/archive/{{message.id}}/raw">{{_('Download the message (.eml)')}}</a></p>
% end
</section>
<section class="card">
<h2>{{_('Why: symbols and scores')}}</h2>
% if message.symbols:
<table id="symbols">
  <thead><tr><th scope="col">{{_('Symbol')}}</th><th scope="col">{{_('Score')}}</th><th scope="col">{{_('Reason')}}</th></tr></thead>
  <tbody>
% for s in sorted(symbols, key=lambda s: -abs(s.score)):
    <tr><td><code>{{s.name}}</code>{{!' <span class="flag">' + _('decides') + '</span>' if s.flag else ''}}</td><td class="num">{{'%+.2f' % s.score}}</td><td>{{reveal_bidi(hide_recipients(s.reason, message.recipients))}}</td></tr>
% end
% if elsewhere is not None:
    <tr id="symbols-elsewhere"><td class="muted">{{_('Other domains')}}</td><td class="num">{{'%+.2f' % elsewhere}}</td><td class="muted">{{_('Findings about recipients in other domains, which this message was judged for too.')}}</td></tr>
% end
  </tbody>
  <tfoot><tr><th scope="row">{{_('Total')}}</th><td class="num">{{'%+.2f' % total}}</td><td></td></tr></tfoot>
</table>
% else:
<p class="muted">{{_('No check found anything to say about this message.')}}</p>
% end
</section>
</div>
<section class="card">
<h2>{{_('MIME parts')}}</h2>
<table id="parts">
  <thead><tr><th scope="col">{{_('Part')}}</th><th scope="col">{{_('Type')}}</th><th scope="col">{{_('File name')}}</th><th scope="col">{{_('Size')}}</th></tr></thead>
  <tbody>
% for i, part in enumerate(parts):
    <tr><td>{{'· ' * part['depth']}}{{i + 1}}</td><td>{{part['type']}}{{'; charset=' + part['charset'] if part['charset'] else ''}}</td><td>{{reveal_bidi(part['filename'])}}</td><td class="num">{{size(part['size']) if part['size'] else ''}}</td></tr>
% end
  </tbody>
</table>
% for what in cut:
<p class="error">{{_('Not every part is listed: {what}.', what=what)}}</p>
% end
% for i, part in enumerate(parts):
% if part['text']:
<h3>{{_('Part {number}: {type}', number=i + 1, type=part['type'])}}</h3>
<pre class="body">{{part['text']}}</pre>
% if part.get('cut'):
<p class="muted">{{_('(shortened)')}}</p>
% end
% end
% end
</section>
<section class="card">
<h2>{{_('Headers')}}</h2>
<table class="headers" id="headers">
% for name, value in headers:
  <tr><th scope="row">{{name}}</th><td>{{reveal_bidi(value)}}</td></tr>
% end
</table>
</section>
