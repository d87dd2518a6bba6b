/* leadchat widget: one <script src=".../widget.js" data-…> tag opens a chat
 * bubble on any site. No framework, no build step. Everything lives in a
 * shadow root, so the host page's CSS cannot reach in and ours cannot leak.
 * Speaks PROTOCOL.md §2 over /ws; survives drops, reloads and restarts by
 * keeping the session id and the unsent messages in localStorage. */
(function (w, d) {
  'use strict';
  if (w.Leadchat && w.Leadchat.version) return; // loaded twice: keep the first

  var script = d.currentScript;
  var FIELDS = ['name', 'email', 'phone', 'organization'];
  var AUTOCOMPLETE = { name: 'name', email: 'email', phone: 'tel', organization: 'organization' };
  var INPUT_TYPE = { email: 'email', phone: 'tel' };
  // Under the server's frame limit (8 KiB) even when every character is 3 bytes.
  var MAX_TEXT = 2000;

  var STRINGS = {
    en: {
      open: 'Open chat', close: 'Close chat', title: 'Chat with {brand}', end: 'End chat',
      send: 'Send', message: 'Your message', placeholder: 'Type your message…',
      greeting: 'Hi! How can we help you today?', intro: 'Tell us how to reach you, then ask away.',
      name: 'Name', email: 'E-mail', phone: 'Phone', organization: 'Organization',
      required: 'required', optional: 'optional', start: 'Start chat',
      missing: 'Please fill in this field.', email_bad: 'Enter a valid e-mail address.',
      phone_bad: 'Enter a phone number of 7 to 15 digits.',
      online: 'Online', connecting: 'Connecting…', offline: 'Offline',
      offline_note: 'Connection lost. Reconnecting… Your messages will be sent when it is back.',
      slow: 'Sending too fast; retrying in a moment…',
      sending: 'Sending…', queued: 'Waiting for connection', failed: 'Not sent',
      typing: '{bot} is typing…', you: 'You said:', bot: 'Assistant', says: '{bot} said:',
      ended: 'This chat has ended.', ended_inactivity: 'This chat ended after a period of inactivity.',
      ended_admin: 'Our team has closed this chat.', thanks: 'Thank you for chatting with us.',
      new_chat: 'Start a new chat', end_failed: 'Could not end the chat. Please try again.',
      full: 'This chat has reached its message limit. Our team will get back to you.',
      replaced: 'This chat is open in another window. Send a message to continue here.'
    },
    hi: {
      open: 'चैट खोलें', close: 'चैट बंद करें', title: '{brand} से बात करें', end: 'चैट समाप्त करें',
      send: 'भेजें', message: 'आपका संदेश', placeholder: 'अपना संदेश लिखें…',
      greeting: 'नमस्ते! हम आपकी क्या मदद कर सकते हैं?', intro: 'हमें बताइए कि आपसे कैसे संपर्क करें, फिर अपना सवाल पूछिए।',
      name: 'नाम', email: 'ई-मेल', phone: 'फ़ोन', organization: 'संस्था',
      required: 'आवश्यक', optional: 'वैकल्पिक', start: 'चैट शुरू करें',
      missing: 'कृपया यह जानकारी भरें।', email_bad: 'कृपया सही ई-मेल पता लिखें।',
      phone_bad: 'कृपया 7 से 15 अंकों का फ़ोन नंबर लिखें।',
      online: 'ऑनलाइन', connecting: 'कनेक्ट हो रहा है…', offline: 'ऑफ़लाइन',
      offline_note: 'कनेक्शन टूट गया। फिर से जुड़ रहे हैं… जुड़ते ही आपके संदेश भेज दिए जाएँगे।',
      slow: 'बहुत तेज़ी से भेजा जा रहा है; थोड़ी देर में फिर से भेजेंगे…',
      sending: 'भेजा जा रहा है…', queued: 'कनेक्शन की प्रतीक्षा', failed: 'नहीं भेजा गया',
      typing: '{bot} लिख रहा है…', you: 'आपने कहा:', bot: 'सहायक', says: '{bot} ने कहा:',
      ended: 'यह चैट समाप्त हो गई है।', ended_inactivity: 'निष्क्रियता के कारण यह चैट समाप्त हो गई।',
      ended_admin: 'हमारी टीम ने यह चैट बंद कर दी है।', thanks: 'हमसे बात करने के लिए धन्यवाद।',
      new_chat: 'नई चैट शुरू करें', end_failed: 'चैट समाप्त नहीं हो सकी। कृपया फिर से प्रयास करें।',
      full: 'यह चैट अपनी संदेश सीमा तक पहुँच गई है। हमारी टीम आपसे संपर्क करेगी।',
      replaced: 'यह चैट किसी दूसरी विंडो में खुली है। यहाँ जारी रखने के लिए संदेश भेजें।'
    }
  };

  var STYLE =
    ':host{all:initial}*{box-sizing:border-box}' +
    '.w{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans Devanagari",sans-serif;color:#1b1f24}' +
    'button,input,textarea{font:inherit;color:inherit}' +
    '.bubble{position:fixed;bottom:20px;width:60px;height:60px;border-radius:50%;border:0;background:var(--c);color:var(--f);' +
    'box-shadow:0 6px 18px rgba(0,0,0,.28);cursor:pointer;display:grid;place-items:center;z-index:2}' +
    '.bubble:focus-visible,button:focus-visible{outline:3px solid #0969da;outline-offset:2px}' +
    '.bubble svg{width:28px;height:28px;fill:currentColor}' +
    '.L .bubble{left:20px}.R .bubble{right:20px}' +
    '.panel{position:fixed;bottom:92px;width:370px;max-width:calc(100vw - 24px);height:min(600px,calc(100vh - 112px));' +
    'background:#fff;border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.28);display:flex;flex-direction:column;overflow:hidden}' +
    '.L .panel{left:20px}.R .panel{right:20px}.panel[hidden]{display:none}' +
    'header{background:var(--c);color:var(--f);padding:10px 8px 10px 14px;display:flex;align-items:center;gap:8px}' +
    'h2{font-size:16px;margin:0;line-height:1.2}.hd{flex:1;min-width:0}' +
    '.st{font-size:12px;opacity:.9;display:flex;align-items:center;gap:5px}' +
    '.dot{width:8px;height:8px;border-radius:50%;background:#f0b400}.on .dot{background:#8ff0a4}' +
    '.hb{background:transparent;border:1px solid currentColor;border-radius:8px;padding:4px 10px;font-size:13px;cursor:pointer;color:var(--f)}' +
    '.x{border:0;font-size:24px;line-height:1;width:36px;height:36px;padding:0}' +
    '.banner{padding:7px 12px;font-size:13px;background:#fff8c5;color:#4d2d00;border-bottom:1px solid #eed888}' +
    '.body{flex:1;overflow-y:auto;padding:12px 14px;background:#f6f8fa;overscroll-behavior:contain}' +
    '.msg{max-width:84%;width:fit-content;padding:8px 12px;border-radius:14px;margin:6px 0;white-space:pre-wrap;overflow-wrap:anywhere}' +
    '.bot{background:#fff;border:1px solid #d8dee4;border-bottom-left-radius:4px}' +
    '.user{margin-left:auto;background:var(--c);color:var(--f);border-bottom-right-radius:4px}' +
    '.pending{opacity:.75}.fail{background:#ffebe9;color:#82071e}' +
    '.meta{display:block;font-size:11px;opacity:.85;margin-top:2px}' +
    '.typing{display:flex;gap:4px;padding:12px}.typing i{width:7px;height:7px;border-radius:50%;background:#6e7781;animation:b 1.2s infinite}' +
    '.typing i:nth-child(2){animation-delay:.2s}.typing i:nth-child(3){animation-delay:.4s}' +
    '@keyframes b{0%,60%,100%{opacity:.3;transform:none}30%{opacity:1;transform:translateY(-3px)}}' +
    'form.ct{display:grid;gap:10px;margin-top:8px}.intro{margin:0 0 4px}' +
    'label{display:block;font-size:13px;font-weight:600;margin-bottom:3px}label small{font-weight:400;color:#57606a}' +
    'input,textarea{width:100%;padding:9px 10px;border:1px solid #afb8c1;border-radius:8px;background:#fff;font-size:16px}' +
    'input:focus,textarea:focus{outline:2px solid var(--c);outline-offset:0;border-color:transparent}' +
    'input[aria-invalid=true]{border-color:#cf222e;background:#fff5f5}' +
    '.err{color:#cf222e;font-size:13px;margin-top:3px}.err:empty{display:none}' +
    '.pri{background:var(--c);color:var(--f);border:0;border-radius:8px;padding:10px 14px;font-weight:600;cursor:pointer;width:100%}' +
    '.pri:disabled,.hb:disabled{opacity:.6;cursor:default}' +
    '.comp{display:flex;gap:8px;padding:10px;border-top:1px solid #d8dee4;background:#fff;align-items:flex-end}' +
    '.comp textarea{resize:none;max-height:120px;min-height:42px}.comp .pri{width:auto}' +
    '.done{text-align:center;padding:14px;border-top:1px solid #d8dee4;background:#fff}.done p{margin:0 0 10px}' +
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}' +
    '[hidden]{display:none!important}' +
    '@media (max-width:480px){.panel{inset:0;left:0!important;right:0!important;width:100%;max-width:none;height:100%;border-radius:0}' +
    '.open .bubble{display:none}}' +
    '@media (prefers-reduced-motion:reduce){*{animation:none!important}}';

  var ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/></svg>';

  var instance = null;

  function fmt(s, vars) {
    return s.replace(/\{(\w+)\}/g, function (_, k) { return vars[k] == null ? '' : vars[k]; });
  }

  function el(tag, cls, text) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text; // never innerHTML: texts come from visitors and servers
    return e;
  }

  function list(v) {
    if (Array.isArray(v)) return v;
    return String(v == null ? '' : v).split(',').map(function (s) { return s.trim(); }).filter(Boolean);
  }

  /** Readable text on the brand colour: dark on light colours, else white. */
  function textOn(color) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color);
    if (!m) return '#fff';
    var h = m[1].length === 3 ? m[1].replace(/./g, '$&$&') : m[1];
    var c = [0, 2, 4].map(function (i) {
      var v = parseInt(h.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] > 0.35 ? '#111' : '#fff';
  }

  function fromAttributes(node) {
    var c = {};
    if (!node) return c;
    ['server', 'brand', 'color', 'position', 'lang', 'greeting', 'required', 'bot', 'open'].forEach(function (k) {
      var v = node.getAttribute('data-' + k);
      if (v != null) c[k] = v;
    });
    return c;
  }

  function settle(raw) {
    var origin = location.origin;
    try { if (script && script.src) origin = new URL(script.src, location.href).origin; } catch (e) { /* keep the page's */ }
    var lang = String(raw.lang || d.documentElement.lang || 'en').slice(0, 2).toLowerCase();
    var color = raw.color && w.CSS && w.CSS.supports('color', raw.color) ? raw.color : '#1f6feb';
    var t = STRINGS[lang] || STRINGS.en;
    var required = raw.required == null ? ['name', 'email'] : list(raw.required);
    return {
      server: String(raw.server || origin).replace(/\/+$/, ''),
      brand: raw.brand || 'Chat',
      bot: raw.bot || t.bot,
      color: color,
      left: /left/.test(raw.position || ''),
      lang: STRINGS[lang] ? lang : 'en',
      t: t,
      greeting: raw.greeting || t.greeting,
      required: required.filter(function (f) { return FIELDS.indexOf(f) >= 0; }),
      open: raw.open === true || raw.open === 'true'
    };
  }

  /** localStorage under one prefix per server; private modes may refuse it. */
  function Storage(prefix) {
    this.get = function (k) {
      try { return JSON.parse(localStorage.getItem(prefix + k)); } catch (e) { return null; }
    };
    this.set = function (k, v) {
      try {
        if (v == null) localStorage.removeItem(prefix + k);
        else localStorage.setItem(prefix + k, JSON.stringify(v));
      } catch (e) { /* the chat still works, it just forgets on reload */ }
    };
  }

  function Widget(cfg) {
    var t = cfg.t;
    var store = new Storage('leadchat:' + cfg.server + ':');
    var S = {
      sid: store.get('sid'),
      queue: store.get('queue') || [], // [{id, text}], oldest first; kept until acked
      ws: null, ready: false, attempt: 0, retry: 0, hold: 0, holdTimer: 0,
      inflight: {}, // client_msg_id sent on the current socket
      shown: {},    // seq -> element, so history replays never double a line
      pending: {},  // client_msg_id -> element
      contact: null, contactSent: false,
      collected: !!store.get('collected'), // so a reload while offline shows the chat, not the form
      ended: false, stopped: false, typingTimer: 0,
      oldest: 0, older: false, loadingOlder: false, // paging back through a long history
      replaced: false // another window took this socket's place (close 4008)
    };
    var ui = build();

    function build() {
      // A tag of our own, styled inline with !important: page rules such as
      // `div { border: … !important }` must not dress the host either.
      var host = el('leadchat-widget');
      host.setAttribute('data-leadchat', '');
      host.style.cssText = 'all:initial!important;position:fixed!important;width:0!important;height:0!important;' +
        'bottom:0!important;z-index:2147483000!important;display:block!important';
      var root = host.attachShadow({ mode: 'open' });
      var style = el('style', null, STYLE);
      var wrap = el('div', 'w ' + (cfg.left ? 'L' : 'R'));
      wrap.style.setProperty('--c', cfg.color);
      wrap.style.setProperty('--f', textOn(cfg.color));
      wrap.lang = cfg.lang;

      var bubble = el('button', 'bubble');
      bubble.type = 'button';
      bubble.innerHTML = ICON; // a constant of this file
      bubble.setAttribute('aria-label', t.open);
      bubble.setAttribute('aria-expanded', 'false');
      bubble.setAttribute('aria-controls', 'lc-panel');

      var panel = el('section', 'panel');
      panel.id = 'lc-panel';
      panel.hidden = true;
      panel.setAttribute('role', 'dialog');
      panel.setAttribute('aria-labelledby', 'lc-title');

      var header = el('header');
      var hd = el('div', 'hd');
      var title = el('h2', null, fmt(t.title, cfg));
      title.id = 'lc-title';
      var status = el('div', 'st');
      var statusText = el('span', null, t.connecting);
      status.append(el('span', 'dot'), statusText);
      hd.append(title, status);
      var endBtn = el('button', 'hb', t.end);
      endBtn.type = 'button';
      endBtn.hidden = true;
      var closeBtn = el('button', 'hb x', '×');
      closeBtn.type = 'button';
      closeBtn.setAttribute('aria-label', t.close);
      header.append(hd, endBtn, closeBtn);

      var banner = el('div', 'banner');
      banner.setAttribute('role', 'status');
      banner.hidden = true;

      var body = el('div', 'body');
      body.addEventListener('scroll', function () { maybeOlder(); }, { passive: true });
      var form = contactForm();
      var log = el('div', 'log');
      log.setAttribute('role', 'log');
      log.setAttribute('aria-live', 'polite');
      log.setAttribute('aria-label', fmt(t.title, cfg));
      var typing = el('div', 'msg bot typing');
      typing.hidden = true;
      typing.append(el('span', 'sr', fmt(t.typing, cfg)), el('i'), el('i'), el('i'));
      body.append(form.node, log, typing);

      var comp = el('form', 'comp');
      var inputId = 'lc-msg';
      var lbl = el('label', 'sr', t.message);
      lbl.htmlFor = inputId;
      var input = el('textarea');
      input.id = inputId;
      input.rows = 1;
      input.maxLength = MAX_TEXT;
      input.placeholder = t.placeholder;
      var send = el('button', 'pri', t.send);
      comp.append(lbl, input, send);

      var done = el('div', 'done');
      var doneText = el('p');
      doneText.setAttribute('role', 'status');
      var again = el('button', 'pri', t.new_chat);
      again.type = 'button';
      done.append(doneText, again);

      panel.append(header, banner, body, comp, done);
      wrap.append(bubble, panel);
      root.append(style, wrap);
      (d.body || d.documentElement).appendChild(host);

      bubble.onclick = function () { toggle(panel.hidden); };
      closeBtn.onclick = function () { toggle(false); };
      endBtn.onclick = endChat;
      again.onclick = newChat;
      panel.addEventListener('keydown', function (e) {
        if (e.key === 'Escape') { e.stopPropagation(); toggle(false); }
      });
      comp.onsubmit = function (e) {
        e.preventDefault();
        var text = input.value.trim();
        if (!text) return;
        input.value = '';
        grow();
        say(text);
      };
      input.addEventListener('keydown', function (e) {
        // Enter sends, Shift+Enter is a new line, as in every chat.
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          comp.requestSubmit ? comp.requestSubmit() : comp.onsubmit(e);
        }
      });
      function grow() {
        input.style.height = 'auto';
        input.style.height = Math.min(input.scrollHeight + 2, 120) + 'px';
      }
      input.addEventListener('input', grow);

      return {
        host: host, wrap: wrap, bubble: bubble, panel: panel, statusBox: status, statusText: statusText,
        endBtn: endBtn, banner: banner, body: body, form: form, log: log, typing: typing,
        comp: comp, input: input, done: done, doneText: doneText, again: again
      };
    }

    function contactForm() {
      var form = el('form', 'ct');
      form.noValidate = true; // our messages, in the widget's language, like the server's
      var intro = el('p', 'intro', cfg.greeting + ' ' + t.intro);
      form.append(intro);
      var inputs = {}, errors = {};
      FIELDS.forEach(function (f) {
        var wrap = el('div');
        var req = cfg.required.indexOf(f) >= 0;
        var label = el('label', null, t[f] + ' ');
        label.append(el('small', null, '(' + (req ? t.required : t.optional) + ')'));
        label.htmlFor = 'lc-' + f;
        var input = el('input');
        input.id = 'lc-' + f;
        input.name = f;
        input.type = INPUT_TYPE[f] || 'text';
        input.autocomplete = AUTOCOMPLETE[f];
        input.maxLength = 254;
        input.required = req;
        if (req) input.setAttribute('aria-required', 'true');
        var err = el('div', 'err');
        err.id = 'lc-' + f + '-err';
        input.setAttribute('aria-describedby', err.id);
        input.addEventListener('input', function () { mark(f, ''); });
        wrap.append(label, input, err);
        form.append(wrap);
        inputs[f] = input;
        errors[f] = err;
      });
      var submit = el('button', 'pri', t.start);
      form.append(submit);
      function mark(f, message) {
        errors[f].textContent = message;
        inputs[f].setAttribute('aria-invalid', message ? 'true' : 'false');
      }
      form.onsubmit = function (e) {
        e.preventDefault();
        var value = {}, first = null;
        FIELDS.forEach(function (f) {
          value[f] = inputs[f].value.trim();
          var bad = '';
          if (!value[f] && cfg.required.indexOf(f) >= 0) bad = t.missing;
          else if (f === 'email' && value[f] && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value[f])) bad = t.email_bad;
          mark(f, bad);
          if (bad && !first) first = inputs[f];
        });
        if (first) return first.focus();
        S.contact = value;
        S.contactSent = false;
        submit.disabled = true;
        flush();
      };
      return {
        node: form,
        first: function () { return inputs.name; },
        fail: function (f, message) {
          f = inputs[f] ? f : 'email';
          var local = t[f + '_bad'];
          // The server speaks English; other languages get our own wording.
          mark(f, cfg.lang === 'en' || !local ? message.charAt(0).toUpperCase() + message.slice(1) + '.' : local);
          submit.disabled = false;
          inputs[f].focus();
        },
        reset: function () { submit.disabled = false; }
      };
    }

    function toggle(open) {
      ui.panel.hidden = !open;
      ui.wrap.classList.toggle('open', open);
      ui.bubble.setAttribute('aria-expanded', String(open));
      ui.bubble.setAttribute('aria-label', open ? t.close : t.open);
      try { sessionStorage.setItem('leadchat:open', open ? '1' : ''); } catch (e) { /* cosmetic */ }
      if (open) {
        if (!S.ws && !S.retry) connect();
        render();
        var target = view() === 'form' ? ui.form.first() : view() === 'chat' ? ui.input : ui.again;
        setTimeout(function () { target.focus(); scrollDown(); }, 0);
      } else {
        ui.bubble.focus();
      }
    }

    function view() {
      if (S.ended) return 'ended';
      return S.collected ? 'chat' : 'form';
    }

    function render() {
      var v = view();
      ui.form.node.hidden = v !== 'form';
      ui.log.hidden = v === 'form';
      ui.comp.hidden = v !== 'chat';
      ui.done.hidden = v !== 'ended';
      ui.endBtn.hidden = v !== 'chat';
      if (v === 'chat' && S.ready && !ui.log.firstChild) line('bot', cfg.greeting); // no server greeting came
    }

    function setStatus() {
      var online = S.ready;
      ui.statusBox.classList.toggle('on', online);
      ui.statusBox.hidden = S.ended; // "Online" above a finished chat misleads
      ui.statusText.textContent = online ? t.online : S.attempt ? t.offline : t.connecting;
      var note = S.hold > Date.now() ? t.slow : S.replaced && !online ? t.replaced
        : !online && S.attempt > 0 && !S.ended ? t.offline_note : '';
      ui.banner.textContent = note;
      ui.banner.hidden = !note;
      Object.keys(S.pending).forEach(function (id) { meta(S.pending[id], online ? t.sending : t.queued); });
    }

    // ---- connection ------------------------------------------------------

    function connect() {
      clearTimeout(S.retry);
      S.retry = 0;
      if (S.ws || S.stopped) return;
      var url = cfg.server.replace(/^http/, 'ws') + '/ws' + (S.sid ? '?session_id=' + encodeURIComponent(S.sid) : '');
      var ws;
      try { ws = new WebSocket(url); } catch (e) { return later(); }
      S.ws = ws;
      S.inflight = {};
      // A connect that hangs (a dead Wi-Fi) counts as a drop.
      var guard = setTimeout(function () { ws.close(); }, 10000);
      ws.onmessage = function (ev) {
        if (S.ws !== ws) return;
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        if (f.type === 'session') clearTimeout(guard);
        onFrame(f);
      };
      ws.onclose = function (ev) {
        clearTimeout(guard);
        if (S.ws !== ws) return;
        S.ws = null;
        S.ready = false;
        S.loadingOlder = false;
        typing(false);
        // 4008: a newer window of this chat took our place; reconnecting on
        // our own would only push that one out in turn.
        S.replaced = ev && ev.code === 4008;
        if (!S.ended && !S.replaced) later();
        setStatus();
      };
    }

    /** Exponential backoff with jitter: a restarted server is not stormed. */
    function later() {
      if (S.stopped) return;
      var base = Math.min(15000, 500 * Math.pow(2, S.attempt++));
      S.retry = setTimeout(connect, base / 2 + Math.random() * base / 2);
    }

    function send(frame) {
      if (S.ws && S.ready) S.ws.send(JSON.stringify(frame));
    }

    function onFrame(f) {
      switch (f.type) {
        case 'session': return onSession(f);
        case 'contact_ok':
          S.collected = true;
          store.set('collected', true);
          S.contact = null;
          ui.form.reset();
          render();
          ui.input.focus();
          return;
        case 'ack': return onAck(f);
        case 'message':
          if (!S.shown[f.seq]) line(f.role, f.text, f.seq);
          if (f.role === 'bot') typing(false);
          return;
        case 'ended': return onEnded(f.reason);
        case 'error': return onError(f);
        case 'history': return onHistory(f);
      }
    }

    function onSession(f) {
      if (S.sid && f.session_id !== S.sid && (S.collected || S.queue.length)) {
        // The server no longer knows our chat (it timed out or was ended
        // elsewhere): say so instead of silently starting over.
        S.sid = f.session_id;
        S.ready = true;
        return onEnded('inactivity');
      }
      S.sid = f.session_id;
      store.set('sid', S.sid);
      S.ready = true;
      S.replaced = false;
      S.attempt = 0;
      S.collected = !!f.contact_collected;
      store.set('collected', S.collected || null);
      var history = f.history || [];
      if (history.length && (!S.oldest || history[0].seq <= S.oldest)) {
        S.oldest = history[0].seq;
        S.older = !!f.history_truncated;
      }
      history.forEach(function (h) {
        if (!S.shown[h.seq]) line(h.role, h.text, h.seq);
      });
      render();
      setStatus();
      flush();
      maybeOlder();
    }

    /** Near the top of a log with older lines on the server: fetch a page. */
    function maybeOlder() {
      if (!S.older || S.loadingOlder || !S.ready || S.ended || ui.log.hidden) return;
      if (ui.body.scrollTop > 40 && ui.body.scrollHeight > ui.body.clientHeight) return;
      S.loadingOlder = true;
      send({ type: 'history', before_seq: S.oldest });
    }

    /** A page of older lines goes on top; what the visitor sees stays put. */
    function onHistory(f) {
      S.loadingOlder = false;
      var before = ui.body.scrollHeight, top = ui.body.scrollTop;
      var first = ui.log.firstChild;
      (f.lines || []).forEach(function (h) {
        if (S.shown[h.seq]) return;
        var node = lineNode(h.role, h.text, h.seq);
        ui.log.insertBefore(node, first);
      });
      if (f.lines && f.lines.length && f.lines[0].seq < S.oldest) S.oldest = f.lines[0].seq;
      S.older = !f.complete && !!(f.lines && f.lines.length);
      ui.body.scrollTop = top + (ui.body.scrollHeight - before);
      if (S.older) setTimeout(maybeOlder, 0);
    }

    function onAck(f) {
      var id = f.client_msg_id;
      S.queue = S.queue.filter(function (m) { return m.id !== id; });
      store.set('queue', S.queue);
      delete S.inflight[id];
      var node = S.pending[id];
      delete S.pending[id];
      if (S.shown[f.seq]) {
        // Already in the replayed history: the first send got through.
        if (node) node.remove();
      } else if (node) {
        node.classList.remove('pending');
        node.lastChild.remove();
        S.shown[f.seq] = node;
      }
      if (!S.shown[f.seq + 1]) typing(true);
    }

    function onError(f) {
      var id = f.client_msg_id;
      if (id) delete S.inflight[id];
      switch (f.code) {
        case 'invalid_contact':
          S.contact = null;
          return ui.form.fail(f.field, f.message || '');
        case 'rate_limited':
          S.loadingOlder = false; // a history page asked too fast: the next scroll asks again
          /* falls through */
        case 'unavailable':
          // Nothing was logged: resend the same frames once the server says.
          S.hold = Date.now() + (f.retry_after_ms || 1000);
          S.contactSent = false;
          setStatus();
          return flush();
        case 'session_ended':
          return onEnded(null);
        case 'session_full':
          ui.banner.textContent = t.full;
          ui.banner.hidden = false;
          /* falls through: the message is not coming back */
        default:
          // bad_frame and the like: resending the same frame cannot help.
          if (id && S.pending[id]) {
            S.queue = S.queue.filter(function (m) { return m.id !== id; });
            store.set('queue', S.queue);
            S.pending[id].classList.add('fail');
            meta(S.pending[id], t.failed);
            delete S.pending[id];
          }
      }
    }

    /** Sends what waits: the contact form, then queued messages in order. */
    function flush() {
      if (!S.ready || S.ended) return;
      var wait = S.hold - Date.now();
      if (wait > 0) {
        clearTimeout(S.holdTimer);
        S.holdTimer = setTimeout(function () { setStatus(); flush(); }, wait);
        return;
      }
      if (S.contact && !S.contactSent) {
        S.contactSent = true;
        send({ type: 'contact', name: S.contact.name, email: S.contact.email, phone: S.contact.phone, organization: S.contact.organization });
      }
      S.queue.forEach(function (m) {
        if (S.inflight[m.id]) return;
        S.inflight[m.id] = true;
        send({ type: 'message', text: m.text, client_msg_id: m.id });
      });
    }

    function say(text) {
      var m = { id: 'w' + Date.now().toString(36) + Math.random().toString(36).slice(2, 10), text: text };
      S.queue.push(m);
      store.set('queue', S.queue); // before sending: a reload now must not lose it
      pendingLine(m);
      if (!S.ws && !S.retry) connect();
      flush();
    }

    // ---- rendering -------------------------------------------------------

    function lineNode(role, text, seq) {
      var node = el('div', 'msg ' + (role === 'user' ? 'user' : 'bot'));
      node.append(el('span', 'sr', (role === 'user' ? t.you : fmt(t.says, cfg)) + ' '), d.createTextNode(text));
      if (seq != null) {
        S.shown[seq] = node;
        node.setAttribute('data-seq', String(seq));
      }
      return node;
    }

    function line(role, text, seq) {
      var node = lineNode(role, text, seq);
      // History goes above messages still waiting to be acked.
      ui.log.insertBefore(node, ui.log.querySelector('.pending'));
      scrollDown();
      return node;
    }

    function pendingLine(m) {
      var node = line('user', m.text);
      node.classList.add('pending');
      ui.log.appendChild(node);
      node.append(el('span', 'meta', S.ready ? t.sending : t.queued));
      S.pending[m.id] = node;
      scrollDown();
    }

    function meta(node, text) {
      if (node.lastChild && node.lastChild.className === 'meta') node.lastChild.textContent = text;
    }

    function typing(on) {
      clearTimeout(S.typingTimer);
      ui.typing.hidden = !on;
      // A lost answer must not leave the dots forever.
      if (on) S.typingTimer = setTimeout(function () { typing(false); }, 20000);
      scrollDown();
    }

    function scrollDown() {
      ui.body.scrollTop = ui.body.scrollHeight;
    }

    // ---- ending ----------------------------------------------------------

    function onEnded(reason) {
      if (S.ended && reason == null) return;
      S.ended = true;
      store.set('sid', null);
      store.set('collected', null);
      Object.keys(S.pending).forEach(function (id) {
        S.pending[id].classList.add('fail');
        meta(S.pending[id], t.failed);
      });
      S.pending = {};
      S.queue = [];
      store.set('queue', null);
      typing(false);
      ui.doneText.textContent =
        (reason === 'inactivity' ? t.ended_inactivity : reason === 'admin' ? t.ended_admin : t.ended) + ' ' + t.thanks;
      var hadFocus = ui.wrap.contains(ui.host.shadowRoot.activeElement);
      render();
      setStatus();
      if (hadFocus) ui.again.focus();
    }

    function endChat() {
      if (!S.sid || S.ended) return;
      ui.endBtn.disabled = true;
      var sid = S.sid;
      fetch(cfg.server + '/end_session', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ session_id: sid })
      }).then(function (r) {
        if (!(r.ok || r.status === 404)) throw new Error('HTTP ' + r.status);
        onEnded('visitor');
      }).catch(function () {
        // REST refused or unreachable: the socket can end it too.
        if (S.ready) return send({ type: 'end' });
        ui.banner.textContent = t.end_failed;
        ui.banner.hidden = false;
      }).then(function () { ui.endBtn.disabled = false; });
    }

    function newChat() {
      var old = S.ws;
      S.ws = null;
      if (old) old.close();
      clearTimeout(S.retry);
      S.retry = 0;
      S.sid = null;
      S.ended = S.ready = S.collected = false;
      S.shown = {};
      S.oldest = 0;
      S.older = S.loadingOlder = S.replaced = false;
      S.attempt = 0;
      ui.log.textContent = '';
      ui.form.reset();
      connect();
      render();
      setStatus();
      ui.form.first().focus();
    }

    w.addEventListener('online', function () {
      // The network is back: try now rather than at the end of the backoff.
      if (!S.ws && S.retry) { S.attempt = 0; connect(); }
    });

    var wasOpen = false;
    try { wasOpen = !!sessionStorage.getItem('leadchat:open'); } catch (e) { /* closed */ }
    render();
    setStatus();
    S.queue.forEach(pendingLine);
    // A visitor mid-chat, or with unsent messages, reconnects at once.
    if (S.sid || S.queue.length) connect();
    if (cfg.open || wasOpen) toggle(true);

    return {
      open: function () { toggle(true); },
      close: function () { toggle(false); },
      destroy: function () {
        S.stopped = true;
        clearTimeout(S.retry);
        if (S.ws) S.ws.close();
        S.ws = null;
        ui.host.remove();
      }
    };
  }

  function start(raw) {
    if (instance) instance.destroy();
    instance = Widget(settle(raw));
    return instance;
  }

  w.Leadchat = {
    version: '1',
    /** Leadchat.init({server, brand, color, position, lang, required, greeting}) */
    init: function (options) {
      var raw = fromAttributes(script);
      Object.keys(options || {}).forEach(function (k) { raw[k] = options[k]; });
      var go = function () { start(raw); };
      if (d.body) go(); else d.addEventListener('DOMContentLoaded', go);
    },
    open: function () { if (instance) instance.open(); },
    close: function () { if (instance) instance.close(); }
  };

  // `data-manual` leaves the start to a later Leadchat.init({...}).
  if (!(script && script.hasAttribute('data-manual'))) w.Leadchat.init({});
})(window, document);
