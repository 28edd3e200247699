% rebase('base', title=title)
<h1>{{_('Defenses')}}</h1>
% if error:
<p class="error" role="alert" id="defenses-error">{{error}}</p>
% end
<section class="card" id="greylist">
  <div class="card-head">
    <h2>{{_('Greylisting')}}</h2>
    <form method="get" action="/defenses" class="inline">
      <input name="client" value="{{client}}" placeholder="{{_('client IP or network')}}" aria-label="{{_('client IP or network')}}">
      <button type="submit" class="small">{{_('Show')}}</button>
% if client:
      <a href="/defenses">{{_('all clients')}}</a>
% end
    </form>
  </div>
  <p class="muted">
% if settings['greylisting']:
    {{_('On: a first attempt from a client network, sender and recipient is answered 451; a retry after {delay} s and within {window} h passes.', delay=settings['greylist_delay'], window=settings['greylist_window'])}}
% else:
    {{_('Off: new senders are not greylisted (Settings, greylisting).')}}
% end
% if user.domain_filter is not None:
    {{_('Entries for mail to your domains only.')}}
% end
  </p>
% if entries:
  <table id="greylist-entries">
    <thead><tr><th scope="col">{{_('Client network')}}</th><th scope="col">{{_('Sender')}}</th><th scope="col">{{_('Recipient')}}</th><th scope="col">{{_('First seen')}}</th><th scope="col">{{_('State')}}</th><th scope="col" class="num">{{_('Attempts')}}</th>
% if user.is_super:
      <th></th>
% end
    </tr></thead>
    <tbody>
% for e in entries:
      <tr><td>{{e['network']}}</td><td>{{e['sender'] or '<>'}}</td><td>{{e['recipient']}}</td><td>{{when(e['first_seen'])}}</td>
        <td>{{_('passed {time}', time=when(e['passed'])) if e['passed'] else _('waiting for a retry')}}</td><td class="num">{{e['attempts']}}</td>
% if user.is_super:
        <td class="actions"><form method="post" action="/defenses/greylist/forget" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <input type="hidden" name="client" value="{{e['network']}}">
          <button type="submit" class="link danger">{{_('Forget this network')}}</button>
        </form></td>
% end
      </tr>
% end
    </tbody>
  </table>
% if len(entries) >= limit:
  <p class="muted">{{_('The {limit} most recently seen entries are shown.', limit=limit)}}</p>
% end
% else:
  <p class="muted">{{_('No greylist entries.')}}</p>
% end
% if user.is_super:
  <form method="post" action="/defenses/greylist/forget" class="row" id="greylist-forget">
    <input type="hidden" name="csrf_token" value="{{csrf}}">
    <input name="client" placeholder="{{_('IP, network or all')}}" aria-label="{{_('IP, network or all')}}" required>
    <button type="submit" class="danger">{{_('Forget entries')}}</button>
    <span class="muted">{{_('Forgotten senders are greylisted anew.')}}</span>
  </form>
  <h3>{{_('Auto-whitelisted networks')}}</h3>
% if trusted:
  <table id="greylist-trusted">
    <thead><tr><th scope="col">{{_('Network')}}</th><th scope="col" class="num">{{_('Passes')}}</th><th scope="col">{{_('Last seen')}}</th></tr></thead>
    <tbody>
% for t in trusted:
      <tr><td>{{t['network']}}</td><td class="num">{{t['passes']}}</td><td>{{when(t['last_seen'])}}</td></tr>
% end
    </tbody>
  </table>
% if totals['trusted'] > len(trusted):
  <p class="muted" id="greylist-trusted-more">{{_('The first {shown} of {total}; portcullis greylist show lists them all.', shown=len(trusted), total=totals['trusted'])}}</p>
% end
% else:
  <p class="muted">{{_('None yet: a network is trusted after {passes} passed retries.', passes=settings['greylist_awl_passes']) if settings['greylist_awl_passes'] else _('Auto-whitelisting is off.')}}</p>
% end
% end
</section>
% if user.is_super:
<section class="card" id="harvest">
  <h2>{{_('Address harvesting')}}</h2>
  <p class="muted">
% if settings['harvest_threshold']:
    {{_('On: a client that tries {threshold} invalid recipients within {window} minutes is refused ({action}) for {block} minutes.', threshold=settings['harvest_threshold'], window=settings['harvest_window'], block=settings['harvest_block'], action=settings['harvest_action'])}}
% else:
    {{_('Off: invalid recipients are refused one by one, clients are not blocked (Settings, harvest_threshold).')}}
% end
  </p>
% if clients:
  <table id="harvest-clients">
    <thead><tr><th scope="col">{{_('Client')}}</th><th scope="col" class="num">{{_('Invalid recipients')}}</th><th scope="col">{{_('Counting since')}}</th><th scope="col">{{_('Blocked until')}}</th><th></th></tr></thead>
    <tbody>
% for c in clients:
      <tr><td>{{c['client']}}</td><td class="num">{{c['invalid']}}</td><td>{{when(c['window_start'])}}</td><td class="{{'state-failed' if c['blocked'] else ''}}">{{when(c['blocked_until']) if c['blocked'] else _('not blocked')}}</td>
        <td class="actions"><form method="post" action="/defenses/harvest/unblock" class="inline">
          <input type="hidden" name="csrf_token" value="{{csrf}}">
          <input type="hidden" name="ip" value="{{c['client']}}">
          <button type="submit" class="link danger">{{_('Unblock') if c['blocked'] else _('Reset count')}}</button>
        </form></td></tr>
% end
    </tbody>
  </table>
% if totals['clients'] > len(clients):
  <p class="muted" id="harvest-clients-more">{{_('The first {shown} of {total}, blocked ones first; portcullis harvest show lists them all.', shown=len(clients), total=totals['clients'])}}</p>
% end
% else:
  <p class="muted">{{_('No client has tried invalid recipients lately.')}}</p>
% end
</section>
% end
