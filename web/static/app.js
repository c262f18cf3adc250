// sessiond "Your devices" page: plain JavaScript, no build step, no
// dependencies.
//
// The tokens live only in HttpOnly cookies that the API sets when a login or
// refresh sends "X-Sessiond-Cookies: 1" (docs/design.md, "Cookies and CSRF"): this script
// never sees them and keeps nothing in storage. Everything it shows from the
// API is set with textContent or as an attribute value, never parsed as HTML:
// device names and User-Agent derived strings are hostile input. The page's
// Content-Security-Policy enforces Trusted Types with no policy, so an HTML
// sink would throw rather than render.
'use strict';

(() => {
  // The page, its files and the API all live under the base path
  // (SESSIOND_BASE_PATH), which the server writes into the page.
  const BASE = document.body.dataset.base || '/';
  const API = BASE + 'api/v1';
  // Where to go once signed in, as the sign-in link asked; the server
  // checks it (docs/design.md, "Return addresses") and answers it as
  // data.redirect only when it may be followed: the page never navigates
  // to the query's value itself.
  const RETURN_TO = new URLSearchParams(location.search).get('return_to') || '';
  const $ = (id) => document.getElementById(id);

  const CLASSES = {
    desktop: 'Computer',
    mobile: 'Phone',
    tablet: 'Tablet',
    cli: 'Command line',
    bot: 'Bot',
    unknown: 'Unknown device type',
  };

  const state = {
    signedIn: false,
    // generation changes on every sign-in and sign-out, so that answers
    // to requests of an earlier session are dropped.
    generation: 0,
    currentID: '',
    user: null,
    sessions: new Map(), // id -> session object from the API
    items: new Map(), // id -> <li>
    itemSeq: 0,
    editing: '', // id whose rename form is open
    buffers: new Set(), // events seen while a list load is in flight
    events: null, // the EventSource
    eventsReopened: false, // a stream was open before: reload the list on reopen
    eventsTimer: 0,
    eventsRetry: 0,
    refreshing: null, // the refresh in flight, shared by every caller
    refreshTimer: 0,
    refreshAt: 0,
    tickTimer: 0,
    newDevices: new Set(), // ids of sessions that signed in from a new device
    activityTimer: 0,
    activitySeq: 0, // drops the answer of an older activity load
  };

  // ---- small helpers ----------------------------------------------------

  class APIError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
      // handled marks an error whose consequence (the sign-in form) has
      // already been shown.
      this.handled = false;
    }
  }

  const NETWORK_MESSAGE = 'Cannot reach the server. Check your connection and try again.';

  function say(text, kind) {
    const s = $('status');
    s.textContent = text || '';
    s.dataset.kind = kind || 'info';
  }

  function codePoints(s) {
    return Array.from(s).length;
  }

  function humanDuration(seconds) {
    if (seconds < 60) return seconds === 1 ? '1 second' : seconds + ' seconds';
    const m = Math.ceil(seconds / 60);
    return m === 1 ? '1 minute' : m + ' minutes';
  }

  function messageFor(e) {
    if (!(e instanceof APIError)) return 'Something went wrong: ' + String(e && e.message ? e.message : e);
    if (e.status === 0) return NETWORK_MESSAGE;
    if (e.status === 429) {
      return 'Too many attempts. Try again ' + (e.retryAfter > 0 ? 'in ' + humanDuration(e.retryAfter) : 'later') + '.';
    }
    if (e.status === 503) return 'The server is busy or cannot reach its database. Try again in a moment.';
    return e.message;
  }

  function report(e) {
    if (e && e.handled) return;
    say(messageFor(e), 'error');
  }

  function label(s) {
    return (s && (s.name || s.device)) || 'Unknown device';
  }

  // ---- views ------------------------------------------------------------

  const VIEWS = ['loading', 'signin', 'signup', 'devices'];

  function show(name, focus) {
    for (const v of VIEWS) {
      const el = $('view-' + v);
      if (el) el.hidden = v !== name;
    }
    $('account').hidden = name !== 'devices';
    document.body.dataset.view = name;
    if (focus) {
      const h = $(name + '-title');
      if (h) h.focus();
    }
  }

  // Secure cookies (and so the __Host- cookies of the API) are refused on
  // plain http anywhere but on the loopback addresses browsers trust.
  function isLoopbackHost(host) {
    const h = host.toLowerCase();
    return h === 'localhost' || h.endsWith('.localhost') || h === '[::1]' ||
      /^127(\.\d{1,3}){3}$/.test(h);
  }

  function cookiesRefused() {
    return location.protocol === 'http:' && !isLoopbackHost(location.hostname);
  }

  function showInsecure() {
    $('insecure-text').textContent = 'This page is served over plain HTTP at ' + location.origin +
      '; browsers refuse secure cookies here, so you cannot stay signed in. Use HTTPS or localhost.';
    $('insecure').hidden = false;
    for (const id of ['signin-fields', 'signup-fields']) {
      const f = $(id);
      if (f) f.disabled = true;
    }
    const toSignup = $('to-signup');
    if (toSignup) toSignup.disabled = true;
    let pub = null;
    try {
      pub = new URL(document.body.dataset.publicUrl || '');
    } catch (e) {
      pub = null;
    }
    if (pub && pub.protocol === 'https:') {
      const a = $('insecure-link');
      a.href = pub.origin + BASE;
      a.textContent = 'Open ' + pub.origin;
      $('insecure-more').hidden = false;
    }
  }

  // ---- the API ----------------------------------------------------------

  function retryAfter(res) {
    const n = parseInt(res.headers.get('Retry-After') || '', 10);
    return n > 0 ? n : 0;
  }

  // send makes one same-origin request: the browser adds the cookies and
  // the Origin and Sec-Fetch-Site headers the server's CSRF check reads.
  async function send(method, path, data) {
    const headers = { 'Accept': 'application/json', 'X-Sessiond-Cookies': '1' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (data !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(data);
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      throw new APIError(0, NETWORK_MESSAGE, 0);
    }
    let env = null;
    try {
      env = await res.json();
    } catch (e) {
      env = null;
    }
    if (!res.ok) {
      const msg = env && typeof env.message === 'string' && env.message ? env.message
        : 'The server answered ' + res.status + '.';
      throw new APIError(res.status, msg, retryAfter(res));
    }
    return env && env.data !== undefined && env.data !== null ? env.data : {};
  }

  // api is send for a signed-in page: when the access token is refused it
  // refreshes once and retries; when the refresh is refused too, the session
  // is over and the page returns to the sign-in form.
  async function api(method, path, data) {
    const gen = state.generation;
    try {
      return await send(method, path, data);
    } catch (e) {
      if (e.status !== 401) throw e;
      const r = await refresh();
      if (r === 'ok') {
        try {
          return await send(method, path, data);
        } catch (e2) {
          if (e2.status === 401) sessionOver(gen, e2);
          throw e2;
        }
      }
      if (r === 'auth') sessionOver(gen, e);
      else e.status = 0;
      throw e;
    }
  }

  function sessionOver(gen, e) {
    e.handled = true;
    if (gen === state.generation && state.signedIn) {
      signedOut('Your session has ended. Please sign in again.');
    }
  }

  // refresh renews the token cookies. Concurrent callers share one request,
  // so a burst of 401s rotates the refresh token once. It resolves to 'ok',
  // 'auth' (refused: sign in again) or 'unavailable' (try again later).
  function refresh() {
    if (!state.refreshing) {
      state.refreshing = doRefresh().finally(() => {
        state.refreshing = null;
      });
    }
    return state.refreshing;
  }

  async function doRefresh() {
    let res;
    // The first refresh of the page asks where to go back to.
    const ask = state.askReturn && RETURN_TO ? '?return_to=' + encodeURIComponent(RETURN_TO) : '';
    state.askReturn = false;
    try {
      res = await fetch(API + '/auth/refresh' + ask, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'Accept': 'application/json', 'X-Sessiond-Cookies': '1' },
      });
    } catch (e) {
      return 'unavailable';
    }
    if (res.ok) {
      let env = null;
      try {
        env = await res.json();
      } catch (e) {
        env = null;
      }
      if (env && env.data) tokensRenewed(env.data);
      if (env && env.data && typeof env.data.redirect === 'string' && env.data.redirect) {
        state.redirect = env.data.redirect;
      }
      return 'ok';
    }
    if (res.status === 400 || res.status === 401 || res.status === 403) return 'auth';
    return 'unavailable';
  }

  // tokensRenewed takes the data of a login or refresh answer: the tokens
  // are in cookies, the session and expires_in are here.
  function tokensRenewed(data) {
    if (data.session && typeof data.session.id === 'string') state.currentID = data.session.id;
    scheduleRefresh(Number(data.expires_in) || 0);
  }

  // scheduleRefresh renews the access token a little before it expires:
  // a minute early, or a fifth of its lifetime when that is shorter.
  function scheduleRefresh(seconds) {
    clearTimeout(state.refreshTimer);
    state.refreshAt = 0;
    if (!(seconds > 0)) return;
    const delay = Math.max(1, seconds - Math.min(60, seconds / 5)) * 1000;
    state.refreshAt = Date.now() + delay;
    state.refreshTimer = setTimeout(timedRefresh, delay);
  }

  async function timedRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshAt = 0;
    if (!state.signedIn) return;
    const gen = state.generation;
    const r = await refresh();
    if (gen !== state.generation) return;
    if (r === 'auth') {
      signedOut('Your session has ended. Please sign in again.');
    } else if (r !== 'ok') {
      state.refreshAt = Date.now() + 15000;
      state.refreshTimer = setTimeout(timedRefresh, 15000);
    }
  }

  // Browsers slow down timers of hidden tabs; catch up when shown again.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.signedIn &&
        state.refreshAt && Date.now() >= state.refreshAt) {
      timedRefresh();
    }
  });

  // ---- signing in and out -----------------------------------------------

  async function signIn(username, password) {
    const body = { username, password };
    if (RETURN_TO) body.return_to = RETURN_TO;
    const data = await send('POST', '/auth/login', body);
    tokensRenewed(data);
    if (typeof data.redirect === 'string' && data.redirect) {
      location.assign(data.redirect);
      return;
    }
    enter(true);
  }

  function enter(focus) {
    state.signedIn = true;
    state.generation++;
    const gen = state.generation;
    state.eventsReopened = false;
    state.eventsRetry = 0;
    clearList();
    say('');
    show('devices', focus);
    openEvents();
    startTicking();
    loadActivity();
    Promise.all([api('GET', '/me'), loadSessions()]).then(([me]) => {
      if (gen !== state.generation) return;
      if (me && me.user) setUser(me.user);
      if (me && me.session && typeof me.session.id === 'string') state.currentID = me.session.id;
    }).catch((e) => {
      if (gen === state.generation) report(e);
    });
  }

  function setUser(user) {
    state.user = user;
    const name = typeof user.username === 'string' ? user.username : '';
    $('account-name').textContent = name;
    const field = $('password-username');
    if (field) field.defaultValue = name;
  }

  // signedOut returns to the sign-in form. The token cookies are HttpOnly,
  // so the page cannot delete them; a revoked session's cookies are
  // refused by the server anyway.
  function signedOut(message) {
    state.signedIn = false;
    state.generation++;
    closeEvents();
    clearTimeout(state.eventsTimer);
    clearTimeout(state.refreshTimer);
    state.refreshAt = 0;
    stopTicking();
    state.currentID = '';
    state.user = null;
    clearList();
    clearActivity();
    const dialog = $('confirm-dialog');
    if (dialog.open) dialog.close('cancel');
    // With the app's own users (data-external) the page has no password
    // or sign-in form: signing in is the app's, behind the Sign in link.
    const passwordForm = $('password-form');
    if (passwordForm) {
      passwordForm.reset();
      $('password-box').open = false;
      $('password-username').defaultValue = '';
    }
    $('account-name').textContent = '';
    const signinError = $('signin-error');
    if (signinError) signinError.textContent = '';
    show('signin', true);
    say(message || '');
  }

  async function signOutHere() {
    try {
      await api('POST', '/auth/logout');
    } catch (e) {
      // Gone already, or unreachable: either way this page signs out.
    }
    signedOut('You signed out.');
  }

  function revokedMessage(reason) {
    switch (reason) {
      case 'logout': return 'You signed out.';
      case 'password_changed': return 'Your password was changed, so this device was signed out.';
      case 'password_reset': return 'Your password was reset, so this device was signed out.';
      case 'account_locked': return 'Your account was locked.';
      case 'account_deleted': return 'Your account was deleted.';
      case 'expired': return 'Your session expired. Please sign in again.';
      case 'evicted': return 'This device was signed out because too many devices were signed in.';
      case 'reuse_detected': return 'This device was signed out to protect your account. Please sign in again.';
      default: return 'This device was signed out from another device.';
    }
  }

  // ---- the devices list -------------------------------------------------

  async function loadSessions() {
    const gen = state.generation;
    const buf = [];
    state.buffers.add(buf);
    let list;
    try {
      list = await api('GET', '/sessions');
    } finally {
      state.buffers.delete(buf);
    }
    if (gen !== state.generation) return;
    state.sessions = new Map();
    for (const s of Array.isArray(list) ? list : []) {
      if (!s || typeof s.id !== 'string') continue;
      state.sessions.set(s.id, s);
      if (s.current) state.currentID = s.id;
    }
    // Events that arrived while the list was on its way may be newer than
    // the list: apply them again (each is idempotent).
    for (const [type, data] of buf) applyEvent(type, data, true);
    render();
  }

  function applyEvent(type, data, replay) {
    if (!replay) {
      for (const buf of state.buffers) buf.push([type, data]);
      // Every change of the sessions is also a line of the history.
      scheduleActivity();
    }
    const id = data.session_id;
    if (typeof id !== 'string') return;
    if (type === 'revoked') {
      if (id === state.currentID) {
        if (data.reason === 'replaced') {
          // This browser signed in again (another tab): follow the new session.
          recheck();
          return;
        }
        signedOut(revokedMessage(data.reason));
        return;
      }
      if (state.sessions.delete(id) && !replay) render();
      return;
    }
    const s = data.session;
    if (!s || typeof s !== 'object') {
      if (!replay) loadSessions().catch(report);
      return;
    }
    const known = state.sessions.has(id);
    state.sessions.set(id, Object.assign({}, state.sessions.get(id), s, { id, current: id === state.currentID }));
    if (!replay) {
      render();
      if (type === 'created' && !known && id !== state.currentID) say('New sign-in: ' + label(s) + '.');
    }
  }

  async function recheck() {
    const gen = state.generation;
    const r = await refresh();
    if (gen !== state.generation) return;
    if (r === 'ok') enter(false);
    else signedOut(revokedMessage('revoked'));
  }

  function compareSessions(a, b) {
    if (!!a.current !== !!b.current) return a.current ? -1 : 1;
    const t = String(b.last_active || '').localeCompare(String(a.last_active || ''));
    if (t) return t;
    const l = String(b.login_time || '').localeCompare(String(a.login_time || ''));
    if (l) return l;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  function clearList() {
    state.sessions = new Map();
    for (const li of state.items.values()) li.remove();
    state.items.clear();
    state.editing = '';
  }

  function render() {
    const list = $('devices');
    const sorted = Array.from(state.sessions.values()).sort(compareSessions);
    for (const [id, li] of state.items) {
      if (!state.sessions.has(id)) {
        const focused = li.contains(document.activeElement);
        li.remove();
        state.items.delete(id);
        if (state.editing === id) state.editing = '';
        if (focused) $('devices-title').focus();
      }
    }
    sorted.forEach((s, i) => {
      let li = state.items.get(s.id);
      if (!li) {
        li = newItem(s.id);
        state.items.set(s.id, li);
      }
      fill(li, s);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('signout-others').disabled = !sorted.some((s) => !s.current);
    document.body.dataset.sessions = String(sorted.length);
  }

  function newItem(id) {
    const li = $('device-template').content.firstElementChild.cloneNode(true);
    li.dataset.id = id;
    const n = ++state.itemSeq;
    const input = li.querySelector('.rename-input');
    input.id = 'rename-' + n;
    li.querySelector('.rename-form label').htmlFor = input.id;
    li.querySelector('.device-title').id = 'device-title-' + n;
    li.setAttribute('aria-labelledby', 'device-title-' + n);
    li.querySelector('.rename-btn').addEventListener('click', () => startRename(id));
    li.querySelector('.revoke-btn').addEventListener('click', (ev) => revokeOne(id, ev.currentTarget));
    li.querySelector('.rename-cancel').addEventListener('click', () => stopRename(id, true));
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        stopRename(id, true);
      }
    });
    li.querySelector('.rename-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      saveName(id, input);
    });
    return li;
  }

  function fill(li, s) {
    const q = (sel) => li.querySelector(sel);
    const title = label(s);
    const cls = Object.prototype.hasOwnProperty.call(CLASSES, s.device_class) ? s.device_class : 'unknown';
    li.classList.toggle('current', !!s.current);
    li.dataset.current = s.current ? 'true' : 'false';
    q('.device-icon use').setAttribute('href', '#icon-' + cls);
    q('.device-name').textContent = title;
    q('.badge').hidden = !s.current;
    q('.new-sign-in').hidden = !state.newDevices.has(s.id);
    q('.device-kind').textContent = s.name && s.device ? CLASSES[cls] + ' · ' + s.device : CLASSES[cls];
    q('.device-ip').textContent = s.ip_address || 'Unknown';
    q('.device-location').textContent = s.location || '';
    q('.device-location-row').hidden = !s.location;
    setTime(q('.device-login'), s.login_time, 'date');
    setTime(q('.device-active'), s.last_active, s.current ? 'now' : 'relative');
    q('.rename-btn').setAttribute('aria-label', 'Rename ' + title);
    const revoke = q('.revoke-btn');
    revoke.setAttribute('aria-label', s.current ? 'Sign out this device' : 'Sign out ' + title);
  }

  // ---- recent security activity ----------------------------------------

  // entryDevice names the device of a history entry's session.
  function entryDevice(s) {
    if (!s || typeof s !== 'object') return 'an unknown device';
    const device = typeof s.device === 'string' ? s.device : '';
    const name = typeof s.name === 'string' ? s.name : '';
    if (name && device) return name + ' (' + device + ')';
    return name || device || 'an unknown device';
  }

  function isActor(by) {
    return !!by && typeof by === 'object' && typeof by.session_id === 'string';
  }

  // describe puts one history entry (docs/design.md, "Security activity")
  // in words; alert marks the ones a user should look at twice, notice a
  // sign-in from somewhere new.
  function describe(e) {
    const s = e.session && typeof e.session === 'object' ? e.session : {};
    const dev = entryDevice(s);
    const by = e.by;
    switch (e.type) {
      case 'signed_in': {
        let text = 'Signed in on ' + dev;
        if (s.location) text += ' (' + s.location + ')';
        const news = [];
        if (e.new_device === true) news.push('new device');
        if (e.new_location === true) news.push('new location');
        if (news.length) text += ' — ' + news.join(', ');
        return { text, notice: news.length > 0 };
      }
      case 'signed_out':
        switch (e.reason) {
          case 'logout': return { text: 'Signed out on ' + dev };
          case 'password_changed': return { text: 'Session on ' + dev + ' ended after a password change' };
          case 'reported': return { text: 'Signed out from ' + dev + ' after it was reported as not yours', alert: true };
          case 'expired': return { text: 'Session on ' + dev + ' expired' };
          case 'evicted': return { text: 'Signed out from ' + dev + ' because too many devices were signed in' };
          case 'replaced': return { text: 'Session on ' + dev + ' was replaced by a new sign-in on the same device' };
          case 'handoff_replayed': return { text: 'Signed out from ' + dev + ' because its sign-in link was used twice', alert: true };
        }
        if (e.reason === 'admin' || by === 'admin') {
          let text = 'Session on ' + dev + ' signed out by an administrator';
          if (e.reason === 'password_reset') text += ' (password reset)';
          else if (e.reason === 'account_locked') text += ' (account locked)';
          else if (e.reason === 'account_deleted') text += ' (account deleted)';
          return { text };
        }
        if (isActor(by)) return { text: 'Signed out from ' + dev + ' by ' + (by.device || 'another device') };
        return { text: 'Session on ' + dev + ' ended' };
      case 'password_changed':
        if (isActor(by)) return { text: 'Password changed on ' + (by.device || dev) };
        return { text: 'Password changed by an administrator' };
      case 'reuse_detected':
        return { text: 'On ' + dev + ', a reused refresh token was detected, so it was signed out', alert: true };
      case 'sign_in_throttled':
        return {
          text: 'After too many failed sign-ins' + (s.ip_address ? ' from ' + s.ip_address : '') +
            ', sign-in attempts were throttled',
          alert: true,
        };
    }
    return null;
  }

  // scheduleActivity reloads the history shortly: a burst of events (every
  // other device signed out) costs one request.
  function scheduleActivity() {
    clearTimeout(state.activityTimer);
    state.activityTimer = setTimeout(loadActivity, 250);
  }

  async function loadActivity() {
    clearTimeout(state.activityTimer);
    const gen = state.generation;
    const seq = ++state.activitySeq;
    let entries;
    try {
      entries = await api('GET', '/activity');
    } catch (e) {
      if (gen !== state.generation || seq !== state.activitySeq || e.handled) return;
      const note = $('activity-note');
      note.textContent = 'Recent activity could not be loaded: ' + messageFor(e);
      note.hidden = false;
      return;
    }
    if (gen !== state.generation || seq !== state.activitySeq) return;
    renderActivity(Array.isArray(entries) ? entries : []);
  }

  function renderActivity(entries) {
    const list = $('activity');
    const items = [];
    const fresh = new Set();
    for (const e of entries) {
      if (!e || typeof e !== 'object') continue;
      if (e.type === 'signed_in' && e.new_device === true && e.session && typeof e.session.id === 'string') {
        fresh.add(e.session.id);
      }
      const d = describe(e);
      if (!d) continue;
      const li = $('activity-template').content.firstElementChild.cloneNode(true);
      li.dataset.type = e.type;
      li.dataset.alert = d.alert ? 'true' : d.notice ? 'notice' : 'false';
      li.querySelector('.activity-text').textContent = d.text;
      setTime(li.querySelector('.activity-time'), e.at, 'relative');
      items.push(li);
    }
    list.replaceChildren(...items);
    const note = $('activity-note');
    note.textContent = items.length ? '' : 'No security activity in the last 30 days.';
    note.hidden = items.length > 0;
    document.body.dataset.activity = String(items.length);
    state.newDevices = fresh;
    render();
  }

  function clearActivity() {
    clearTimeout(state.activityTimer);
    state.activitySeq++;
    state.newDevices = new Set();
    $('activity').replaceChildren();
    $('activity-note').hidden = true;
    delete document.body.dataset.activity;
  }

  // ---- times ------------------------------------------------------------

  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const relFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  function relative(d) {
    const sec = (d.getTime() - Date.now()) / 1000;
    const abs = Math.abs(sec);
    if (abs < 45) return 'just now';
    const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [30, 'day'], [12, 'month']];
    let value = sec;
    let unit = 'second';
    for (const [size, name] of steps) {
      if (Math.abs(value) < size) break;
      value /= size;
      unit = { second: 'minute', minute: 'hour', hour: 'day', day: 'month', month: 'year' }[name];
    }
    return relFormat.format(Math.round(value), unit);
  }

  function setTime(el, iso, mode) {
    const d = new Date(typeof iso === 'string' ? iso : NaN);
    if (isNaN(d.getTime())) {
      el.textContent = 'Unknown';
      el.removeAttribute('datetime');
      el.removeAttribute('title');
      delete el.dataset.mode;
      return;
    }
    el.dateTime = d.toISOString();
    el.title = fullFormat.format(d);
    el.dataset.mode = mode;
    el.textContent = mode === 'now' ? 'Active now' : mode === 'relative' ? relative(d) : dateFormat.format(d);
  }

  function startTicking() {
    stopTicking();
    state.tickTimer = setInterval(() => {
      for (const el of document.querySelectorAll('time[data-mode="relative"]')) {
        el.textContent = relative(new Date(el.dateTime));
      }
    }, 30000);
  }

  function stopTicking() {
    clearInterval(state.tickTimer);
    state.tickTimer = 0;
  }

  // ---- actions ----------------------------------------------------------

  async function revokeOne(id, button) {
    if (id === state.currentID) {
      button.disabled = true;
      await signOutHere();
      return;
    }
    const s = state.sessions.get(id);
    const gen = state.generation;
    button.disabled = true;
    try {
      await api('DELETE', '/sessions/' + encodeURIComponent(id));
    } catch (e) {
      // 404: it was gone already, which is what the user wanted.
      if (e.status !== 404) {
        button.disabled = false;
        report(e);
        return;
      }
    }
    if (gen !== state.generation) return;
    const li = state.items.get(id);
    const next = li && (li.nextElementSibling || li.previousElementSibling);
    state.sessions.delete(id);
    render();
    say('Signed out ' + label(s) + '.');
    const target = next && next.querySelector('.revoke-btn');
    if (target) target.focus();
    else $('devices-title').focus();
  }

  async function revokeOthers() {
    const gen = state.generation;
    const button = $('signout-others');
    button.disabled = true;
    try {
      const data = await api('DELETE', '/sessions');
      if (gen !== state.generation) return;
      for (const id of Array.from(state.sessions.keys())) {
        if (id !== state.currentID) state.sessions.delete(id);
      }
      render();
      const n = data && typeof data.revoked === 'number' ? data.revoked : 0;
      say(n === 1 ? 'Signed out 1 other device.' : 'Signed out ' + n + ' other devices.');
    } catch (e) {
      if (gen === state.generation) {
        render();
        report(e);
      }
    }
  }

  function startRename(id) {
    if (state.editing && state.editing !== id) stopRename(state.editing, false);
    const li = state.items.get(id);
    const s = state.sessions.get(id);
    if (!li || !s) return;
    state.editing = id;
    const input = li.querySelector('.rename-input');
    input.value = s.name || '';
    input.placeholder = s.device || '';
    li.querySelector('.rename-form').hidden = false;
    li.querySelector('.rename-btn').hidden = true;
    input.focus();
    input.select();
  }

  function stopRename(id, focus) {
    const li = state.items.get(id);
    if (state.editing === id) state.editing = '';
    if (!li) return;
    li.querySelector('.rename-form').hidden = true;
    const btn = li.querySelector('.rename-btn');
    btn.hidden = false;
    if (focus) btn.focus();
  }

  async function saveName(id, input) {
    const name = input.value.trim();
    if (codePoints(name) > 64) {
      say('A device name has at most 64 characters.', 'error');
      input.focus();
      return;
    }
    const gen = state.generation;
    input.disabled = true;
    try {
      const s = await api('PATCH', '/sessions/' + encodeURIComponent(id), { name });
      if (gen !== state.generation) return;
      if (s && s.id === id) {
        state.sessions.set(id, Object.assign({}, state.sessions.get(id), s, { current: id === state.currentID }));
      }
      stopRename(id, true);
      render();
      say(name ? 'Renamed to ' + name + '.' : 'Name cleared.');
    } catch (e) {
      if (gen !== state.generation) return;
      if (e.status === 404) {
        state.sessions.delete(id);
        render();
      }
      report(e);
    } finally {
      input.disabled = false;
    }
  }

  async function changePassword(ev) {
    ev.preventDefault();
    const err = $('password-error');
    err.textContent = '';
    const current = $('password-current');
    const next = $('password-new');
    const confirm = $('password-confirm');
    if (codePoints(next.value) < 8) {
      err.textContent = 'The new password needs at least 8 characters.';
      next.focus();
      return;
    }
    if (next.value !== confirm.value) {
      err.textContent = 'The new passwords do not match.';
      confirm.focus();
      return;
    }
    const revokeOthers = $('password-revoke').checked;
    const gen = state.generation;
    const submit = ev.target.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      await api('POST', '/auth/password', {
        current_password: current.value,
        new_password: next.value,
        revoke_other_sessions: revokeOthers,
      });
      if (gen !== state.generation) return;
      $('password-form').reset();
      $('password-box').open = false;
      say(revokeOthers ? 'Your password was changed and your other devices were signed out.' : 'Your password was changed.');
      if (revokeOthers) loadSessions().catch(report);
      // A password change ends no session of its own: no event tells it.
      loadActivity();
    } catch (e) {
      if (gen !== state.generation || e.handled) return;
      err.textContent = messageFor(e);
      current.focus();
    } finally {
      submit.disabled = false;
    }
  }

  // ---- live updates -----------------------------------------------------

  function setLive(s) {
    const el = $('live');
    el.dataset.state = s;
    document.body.dataset.live = s;
    $('live-text').textContent = s === 'open' ? 'Live' : s === 'error' ? 'Offline, retrying…' : 'Connecting…';
  }

  function closeEvents() {
    if (state.events) {
      state.events.close();
      state.events = null;
    }
    setLive('connecting');
  }

  // openEvents follows the user's session events. The server ends the
  // stream when the access token expires, after this session's own revoked
  // event, or when it shuts down; rather than let EventSource retry blindly,
  // the page checks why (refreshing the token if that was it) and reconnects.
  function openEvents() {
    closeEvents();
    clearTimeout(state.eventsTimer);
    if (!state.signedIn || typeof EventSource === 'undefined') return;
    const gen = state.generation;
    const es = new EventSource(API + '/sessions/events');
    let opened = false;
    state.events = es;
    es.onopen = () => {
      if (state.events !== es) return;
      if (state.eventsRetry > 0 || state.eventsReopened) {
        loadSessions().catch(report);
        loadActivity();
      }
      opened = true;
      state.eventsReopened = true;
      state.eventsRetry = 0;
      setLive('open');
    };
    for (const type of ['created', 'renamed', 'revoked']) {
      es.addEventListener(type, (ev) => {
        if (state.events !== es) return;
        let data = null;
        try {
          data = JSON.parse(ev.data);
        } catch (e) {
          data = null;
        }
        if (data && typeof data === 'object') applyEvent(type, data, false);
      });
    }
    es.onerror = () => {
      if (state.events !== es) return;
      es.close();
      state.events = null;
      if (opened) {
        reconnect(gen);
        return;
      }
      // It failed before it opened: back off before asking again.
      setLive('error');
      const delay = Math.min(30000, 500 * 2 ** state.eventsRetry);
      state.eventsRetry++;
      state.eventsTimer = setTimeout(() => reconnect(gen), delay);
    };
  }

  async function reconnect(gen) {
    if (gen !== state.generation) return;
    setLive('connecting');
    try {
      // A 401 here refreshes once; if that is refused too, api() returns
      // the page to the sign-in form.
      await api('GET', '/me');
    } catch (e) {
      if (gen !== state.generation || e.handled) return;
      setLive('error');
      const delay = Math.min(30000, 1000 * 2 ** state.eventsRetry);
      state.eventsRetry++;
      state.eventsTimer = setTimeout(() => reconnect(gen), delay);
      return;
    }
    if (gen === state.generation) openEvents();
  }

  // ---- wiring -----------------------------------------------------------

  function loginError(e) {
    if (e.status === 401) return 'Wrong username or password.';
    return messageFor(e);
  }

  function wire() {
    const signinForm = $('signin-form');
    if (signinForm) signinForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const fields = $('signin-fields');
      const err = $('signin-error');
      err.textContent = '';
      const password = $('signin-password');
      fields.disabled = true;
      try {
        await signIn($('signin-username').value.trim(), password.value);
        password.value = '';
      } catch (e) {
        err.textContent = loginError(e);
        fields.disabled = false;
        password.focus();
        return;
      }
      fields.disabled = false;
    });

    const signupForm = $('signup-form');
    if (signupForm) {
      $('to-signup').addEventListener('click', () => {
        say('');
        show('signup', true);
      });
      $('to-signin').addEventListener('click', () => {
        say('');
        show('signin', true);
      });
      signupForm.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const fields = $('signup-fields');
        const err = $('signup-error');
        err.textContent = '';
        const username = $('signup-username').value.trim();
        const password = $('signup-password').value;
        if (codePoints(password) < 8) {
          err.textContent = 'The password needs at least 8 characters.';
          $('signup-password').focus();
          return;
        }
        fields.disabled = true;
        try {
          await send('POST', '/auth/register', {
            username,
            email: $('signup-email').value.trim(),
            password,
          });
        } catch (e) {
          err.textContent = messageFor(e);
          fields.disabled = false;
          $('signup-username').focus();
          return;
        }
        try {
          await signIn(username, password);
          signupForm.reset();
        } catch (e) {
          $('signin-username').value = username;
          show('signin', true);
          $('signin-error').textContent = 'Your account was created, but signing in failed: ' + loginError(e);
        }
        fields.disabled = false;
      });
    }

    $('signout').addEventListener('click', () => {
      $('signout').disabled = true;
      signOutHere().finally(() => {
        $('signout').disabled = false;
      });
    });

    const dialog = $('confirm-dialog');
    $('signout-others').addEventListener('click', () => {
      dialog.returnValue = '';
      dialog.showModal();
    });
    dialog.addEventListener('close', () => {
      if (dialog.returnValue === 'confirm' && state.signedIn) revokeOthers();
      else if (state.signedIn) $('signout-others').focus();
    });

    const passwordForm = $('password-form');
    if (passwordForm) passwordForm.addEventListener('submit', changePassword);
  }

  async function start() {
    wire();
    if (cookiesRefused()) {
      showInsecure();
      show('signin');
      return;
    }
    // A refresh both tells whether the cookies still hold a session and
    // says when the access token expires.
    state.askReturn = true;
    const r = await refresh();
    if (r === 'ok' && state.redirect) {
      // Signed in already: back to where the sign-in link came from.
      location.assign(state.redirect);
      return;
    }
    if (r === 'ok') {
      enter(false);
      return;
    }
    if (r === 'auth') {
      show('signin');
      return;
    }
    // The server is busy or unreachable: the access token may still work.
    try {
      const me = await send('GET', '/me');
      if (me && me.session && typeof me.session.id === 'string') state.currentID = me.session.id;
      enter(false);
      state.refreshAt = Date.now() + 15000;
      state.refreshTimer = setTimeout(timedRefresh, 15000);
    } catch (e) {
      show('signin');
      if (e.status !== 401) report(e);
    }
  }

  start();
})();
