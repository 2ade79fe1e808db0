// Herald console: one page, plain JavaScript, no library. Every figure comes from Herald's
// HTTP API with the signed-in token; the API decides what a role may see or do, so a page
// that is hidden from a role is only a convenience and an error from the API is shown as the
// problem's `detail`. Everything received is put in the page with textContent, never as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'herald.token';
  const ENTRIES_KEY = 'herald.audit.entries';
  const FILTERS_KEY = 'herald.audit.filters';
  const AUDIT_FILTERS = ['recipient', 'page_id', 'category', 'outcome', 'reason', 'campaign',
    'client', 'kind', 'from', 'to', 'limit'];
  const CATEGORIES = ['response', 'receipt', 'shipping_update', 'account_update', 'event_update',
    'agent_reply', 'marketing'];
  const KINDS = ['decision', 'attempt', 'status', 'consent', 'campaign', 'policy', 'retention',
    'erasure', 'inbound', 'recipient', 'endpoint'];
  const FINISHED = ['completed', 'cancelled'];

  // Timers of the page on screen (polling); cleared when another page is shown.
  let timers = [];
  const main = document.getElementById('main');

  // ---- the token -------------------------------------------------------------------------

  // A link printed by `herald serve --sandbox` carries the token in the fragment
  // (#token=…): it is read once, kept in sessionStorage and taken out of the address bar and
  // the history, so it is not bookmarked or shared by accident. A fragment never reaches a
  // server, not even in a Referer.
  function takeTokenFromUrl() {
    const hash = location.hash.replace(/^#/, '');
    if (!hash.startsWith('token=')) return;
    const token = decodeURIComponent(hash.slice('token='.length));
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search + '#/');
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  // The token's claims, read for display and for which pages to offer. Not trusted for
  // anything else: the API checks the signature and the role on every call.
  function claims() {
    const t = token();
    if (!t) return null;
    try {
      const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part + '==='.slice((part.length + 3) % 4)));
    } catch (_) {
      return {};
    }
  }

  // ---- the API ---------------------------------------------------------------------------

  class Problem extends Error {
    constructor(status, body) {
      super((body && body.detail) || ('HTTP ' + status));
      this.status = status;
      this.body = body || {};
    }
  }

  async function request(method, path, { body, contentType, raw } = {}) {
    const headers = {};
    const t = token();
    if (t) headers['Authorization'] = 'Bearer ' + t;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = contentType || 'application/json';
      payload = contentType ? body : JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
    } catch (e) {
      throw new Problem(0, { detail: 'Herald did not answer: ' + e.message });
    }
    if (!response.ok) {
      let problem = null;
      try { problem = await response.json(); } catch (_) { /* not a problem document */ }
      throw new Problem(response.status, problem);
    }
    if (raw) return response;
    return response.json();
  }
  const api = {
    get: (path) => request('GET', path),
    post: (path, body, opts) => request('POST', path, Object.assign({ body }, opts)),
    del: (path) => request('DELETE', path),
  };

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && String(v).trim() !== '') q.set(k, String(v).trim());
    }
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---- building the page -----------------------------------------------------------------

  // h('tag.class#id', {attr: value, onclick: fn}, children…)
  function h(spec, attrs, ...children) {
    const [, tag, rest] = spec.match(/^([a-z0-9]+)(.*)$/i);
    const el = document.createElement(tag);
    for (const part of rest.match(/[.#][^.#]+/g) || []) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
    if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
      children.unshift(attrs);
      attrs = null;
    }
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, v);
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const svgNs = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, text) {
    const el = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function show(title, ...content) {
    for (const t of timers) clearInterval(t);
    timers = [];
    main.replaceChildren(h('h1', title));
    append(main, content);
    document.title = title + ' — Herald console';
    main.focus();
  }

  // A region that says what went wrong, as the API said it (`detail`, and each bad field).
  function problemBox() {
    return h('div.problem', { role: 'alert', 'aria-live': 'assertive' });
  }
  function report(box, error) {
    box.replaceChildren();
    if (!error) return;
    const detail = error instanceof Problem ? error.message : String(error.message || error);
    const status = error instanceof Problem && error.status ? ' (' + error.status + ')' : '';
    append(box, [h('strong', 'Herald answered' + status + ': '), h('span.detail', detail)]);
    const errors = error instanceof Problem && Array.isArray(error.body.errors) ? error.body.errors : [];
    if (errors.length) {
      box.appendChild(h('ul', { 'aria-label': 'Each bad field' }, errors.map((e) => h('li', h('code', e.field), ': ', e.message))));
    }
    if (error instanceof Problem && error.status === 401) {
      box.appendChild(h('p', h('a', { href: '#/sign-in' }, 'Sign in again')));
    }
  }

  function field(label, input, hint) {
    const id = input.id || ('f-' + Math.random().toString(36).slice(2, 9));
    input.id = id;
    const hintEl = hint ? h('span.hint', { id: id + '-hint' }, hint) : null;
    if (hintEl) input.setAttribute('aria-describedby', id + '-hint');
    return h('div.field', h('label', { for: id }, label), input, hintEl);
  }
  function text(name, attrs) {
    return h('input', Object.assign({ type: 'text', name, id: 'f-' + name, autocomplete: 'off' }, attrs || {}));
  }
  function select(name, options, first) {
    return h('select', { name, id: 'f-' + name },
      first !== undefined ? h('option', { value: '' }, first) : null,
      options.map((o) => h('option', { value: o }, o)));
  }

  function fmt(v) {
    if (v === undefined || v === null || v === '') return '—';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  // A moment as the API gives it (RFC 3339, up to nanoseconds, UTC) shown to the second in the
  // viewer's time zone; the exact value stays on hover and in `datetime`.
  function when(v) {
    if (v === undefined || v === null || v === '') return '—';
    const d = new Date(String(v).replace(/(\.\d{3})\d+/, '$1'));
    if (Number.isNaN(d.getTime())) return fmt(v);
    const p = (n) => String(n).padStart(2, '0');
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(d)
      .find((part) => part.type === 'timeZoneName');
    const shown = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
      p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + (zone ? ' ' + zone.value : '');
    return h('time', { datetime: String(v), title: String(v) }, shown);
  }
  function kv(pairs) {
    return h('dl.kv', pairs.filter(Boolean).map(([k, v]) => [h('dt', k),
      h('dd', v instanceof Node ? v : fmt(v))]));
  }
  function table(caption, columns, rows, opts) {
    opts = opts || {};
    const head = h('tr', columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)));
    const body = rows.map((r) => h('tr', columns.map((c) => {
      const v = c.value(r);
      return h('td', { class: c.num ? 'num' : (c.mono ? 'mono' : null) }, v instanceof Node ? v : fmt(v));
    })));
    return h('div.scroll', h('table', { 'data-table': opts.name || null },
      h('caption.muted', { class: opts.hideCaption ? 'skip' : 'muted' }, caption),
      h('thead', head), h('tbody', body)));
  }
  function outcomeSpan(v) { return v ? h('span', { class: String(v).replace(/[^a-z_]/g, '') }, v) : '—'; }
  function link(href, label) { return h('a', { href }, label); }
  function card(label, value, name) {
    return h('div.card', h('div.label', label), h('div.value', { 'data-count': name || null }, fmt(value)));
  }

  // fetch + Blob: the export needs the bearer header, which a plain link cannot carry.
  async function download(path, filename) {
    const response = await request('GET', path, { raw: true });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: filename });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return blob.size;
  }

  // A confirmation that must be answered with the keyboard or the mouse; resolves to true
  // only when the person typed `expected` and pressed the danger button.
  function confirmDialog(title, message, expected, action) {
    return new Promise((resolve) => {
      const input = text('confirm', { autocomplete: 'off' });
      const go = h('button.danger', { type: 'submit', value: 'confirm', disabled: true }, action);
      input.addEventListener('input', () => { go.disabled = input.value.trim() !== expected; });
      const dialog = h('dialog', { 'aria-labelledby': 'dialog-title' },
        h('form', { method: 'dialog' },
          h('h2#dialog-title', title), h('p', message),
          field('Type ' + expected + ' to confirm', input),
          h('div.actions', go, h('button', { type: 'button', value: 'cancel', onclick: () => dialog.close('cancel') }, 'Keep it'))));
      dialog.addEventListener('close', () => {
        const ok = dialog.returnValue === 'confirm' && input.value.trim() === expected;
        dialog.remove();
        resolve(ok);
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      input.focus();
    });
  }

  // ---- sign in ---------------------------------------------------------------------------

  function signInPage(message) {
    const box = problemBox();
    const area = h('textarea.token', { name: 'token', id: 'f-token', required: true, spellcheck: 'false', autocomplete: 'off' });
    const form = h('form', { 'aria-describedby': 'sign-in-help' },
      field('Herald token (JWT)', area, 'Printed by `herald token` or by `herald serve --sandbox`. Kept in this tab only (sessionStorage).'),
      h('div.actions', h('button.primary', { type: 'submit' }, 'Sign in')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, area.value.trim());
      try {
        await api.get('/v1/policy');
        renderChrome();
        location.hash = home();
      } catch (e) {
        sessionStorage.removeItem(TOKEN_KEY);
        renderChrome();
        report(box, e);
      }
    });
    show('Sign in', h('p#sign-in-help', 'Paste a Herald JWT. The console calls the same HTTP API with it, and sees what its role may see.'),
      message ? h('p.notice', message) : null, box, form);
    area.focus();
  }

  function home() {
    const c = claims() || {};
    return c.role === 'marketer' ? '#/campaigns' : (c.role === 'backend' ? '#/recipient' : '#/audit');
  }

  function renderChrome() {
    const c = claims();
    const nav = document.getElementById('nav');
    const who = document.getElementById('who');
    nav.hidden = !c;
    who.hidden = !c;
    if (!c) return;
    document.getElementById('who-name').textContent = (c.sub || '?') + ' (' + (c.role || '?') + ')';
    for (const li of nav.querySelectorAll('li')) {
      li.hidden = c.role && !li.dataset.roles.split(' ').includes(c.role);
    }
    const current = '#/' + (location.hash.replace(/^#\//, '').split(/[/?]/)[0] || '');
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('href') === current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // ---- audit search ----------------------------------------------------------------------

  function auditFilterForm(saved) {
    const inputs = {
      recipient: text('recipient', { placeholder: 'PSID' }),
      page_id: text('page_id'),
      category: select('category', CATEGORIES, 'any'),
      outcome: text('outcome', { placeholder: 'allow, deny, sent, failed…' }),
      reason: text('reason', { placeholder: 'no_consent, quiet_hours…' }),
      campaign: text('campaign', { placeholder: 'cmp_…' }),
      client: text('client'),
      kind: select('kind', KINDS, 'any'),
      from: text('from', { placeholder: '2026-11-01T00:00:00Z' }),
      to: text('to', { placeholder: '2026-12-01T00:00:00Z' }),
      limit: h('input', { type: 'number', name: 'limit', id: 'f-limit', min: 1, max: 1000, value: '50' }),
    };
    for (const k of AUDIT_FILTERS) if (saved && saved[k] !== undefined) inputs[k].value = saved[k];
    const labels = { recipient: 'Recipient (PSID)', page_id: 'Page id', category: 'Category', outcome: 'Outcome',
      reason: 'Reason', campaign: 'Campaign', client: 'Client', kind: 'Kind', from: 'From (RFC 3339, inclusive)',
      to: 'To (RFC 3339, exclusive)', limit: 'Entries per page' };
    const form = h('form.fields', { 'aria-label': 'Audit filters' },
      AUDIT_FILTERS.map((k) => field(labels[k], inputs[k])));
    const values = () => Object.fromEntries(AUDIT_FILTERS.map((k) => [k, inputs[k].value]));
    return { form, values };
  }

  function auditPage() {
    const saved = JSON.parse(sessionStorage.getItem(FILTERS_KEY) || '{}');
    const { form, values } = auditFilterForm(saved);
    const box = problemBox();
    const results = h('section', { 'aria-live': 'polite', 'aria-label': 'Results' });
    let cursors = [null]; // the cursor of each page shown, for "previous"
    let page = 0;
    // Each search or look at the latest entries has a number; an answer to an older one,
    // arriving late, is dropped rather than shown as the newer one's.
    let asked = 0;

    async function run(cursor) {
      const mine = ++asked;
      report(box, null);
      // Cleared at once, so that nobody reads the last search's rows as this one's answer.
      results.replaceChildren(h('p.muted', 'Searching…'));
      const filters = values();
      sessionStorage.setItem(FILTERS_KEY, JSON.stringify(filters));
      try {
        const answer = await api.get('/v1/audit' + query(Object.assign({}, filters, { cursor })));
        if (mine !== asked) return;
        sessionStorage.setItem(ENTRIES_KEY, JSON.stringify(answer.entries));
        renderResults(answer);
      } catch (e) {
        if (mine !== asked) return;
        results.replaceChildren();
        report(box, e);
      }
    }

    // The latest entries matching the filters (but their time range), newest first: what the
    // page shows when opened, in one read of the log from its end.
    async function latest() {
      const mine = ++asked;
      results.replaceChildren(h('p.muted', 'Reading the latest entries…'));
      const filters = values();
      const want = Math.min(Math.max(Number(filters.limit) || 50, 1), 1000);
      delete filters.from;
      delete filters.to;
      try {
        const answer = await api.get('/v1/audit' + query(Object.assign({}, filters, { order: 'newest', limit: want })));
        if (mine !== asked) return;
        const rows = answer.entries;
        sessionStorage.setItem(ENTRIES_KEY, JSON.stringify(rows));
        results.replaceChildren(
          h('h2', 'Latest entries'),
          h('p.muted', { 'data-result-count': rows.length, 'data-latest': '' },
            rows.length
              ? 'The latest ' + rows.length + ' entr' + (rows.length === 1 ? 'y' : 'ies') + ', newest first' +
                '. Search to page through the log.'
              : 'No entries match.'),
          entriesTable(rows));
      } catch (e) {
        if (mine !== asked) return;
        results.replaceChildren();
        report(box, e);
      }
    }

    function renderResults(answer) {
      const rows = answer.entries;
      const prev = h('button', { type: 'button', disabled: page === 0, onclick: () => { page -= 1; run(cursors[page]); } }, 'Previous page');
      const next = h('button', { type: 'button', disabled: !answer.next_cursor, onclick: () => {
        page += 1; cursors[page] = answer.next_cursor; run(answer.next_cursor);
      } }, 'Next page');
      results.replaceChildren(
        h('h2', 'Entries'),
        h('p.muted', { 'data-result-count': rows.length }, 'Page ' + (page + 1) + ': ' + rows.length + ' entr' + (rows.length === 1 ? 'y' : 'ies') + ', oldest first.'),
        entriesTable(rows),
        h('div.actions', prev, next));
    }
    function entriesTable(rows) {
      return table('Audit entries', [
          { label: 'Seq', num: true, value: (e) => link('#/entry/' + e.seq, String(e.seq)) },
          { label: 'At', value: (e) => when(e.at) },
          { label: 'Kind', value: (e) => e.kind },
          { label: 'Outcome', value: (e) => outcomeSpan(e.outcome) },
          { label: 'Reason', value: (e) => e.reason },
          { label: 'Category', value: (e) => e.category },
          { label: 'Recipient', value: (e) => e.recipient ? link('#/recipient/' + encodeURIComponent(e.recipient), e.recipient) : (e.erased ? 'erased' : '—') },
          { label: 'Message', mono: true, value: (e) => e.message_id ? link('#/message/' + e.message_id, e.message_id) : '—' },
          { label: 'Campaign', mono: true, value: (e) => e.campaign ? link('#/campaign/' + e.campaign, e.campaign) : '—' },
          { label: 'Client', value: (e) => e.client },
          { label: 'Rule', mono: true, value: (e) => e.rule },
        ], rows, { name: 'audit', hideCaption: true });
    }

    const exportBox = h('div.notice', { role: 'status' });
    async function exportAs(format) {
      report(box, null);
      exportBox.textContent = '';
      const filters = values();
      delete filters.limit;
      try {
        const size = await download('/v1/audit/export' + query(Object.assign({ format }, filters)), 'herald-audit.' + format);
        exportBox.textContent = 'Exported ' + size + ' bytes as ' + format.toUpperCase() + '.';
      } catch (e) {
        report(box, e);
      }
    }

    form.addEventListener('submit', (ev) => { ev.preventDefault(); cursors = [null]; page = 0; run(null); });
    append(form, [h('div.actions',
      h('button.primary', { type: 'submit' }, 'Search'),
      h('button', { type: 'button', onclick: () => exportAs('csv') }, 'Export CSV'),
      h('button', { type: 'button', onclick: () => exportAs('jsonl') }, 'Export JSONL'))]);
    show('Audit log', h('p.muted', 'Every decision, delivery attempt, status change, consent and policy reload, in one hash-chained log. Leave a filter empty to match everything.'),
      form, box, exportBox, results);
    latest();
  }

  // ---- an entry, a message, its decision -------------------------------------------------

  function decisionSection(decision) {
    if (!decision) return null;
    const consent = decision.consent;
    return [
      h('h2', 'Decision'),
      kv([
        ['Outcome', outcomeSpan(decision.outcome)],
        ['Reason', decision.reason],
        ['Rule', h('code', fmt(decision.rule))],
        ['Policy version', h('code', fmt(decision.policy_version))],
        decision.messaging_type ? ['Messaging type', decision.messaging_type] : null,
        decision.tag ? ['Tag', decision.tag] : null,
        decision.utility_template ? ['Utility template', decision.utility_template] : null,
        decision.via ? ['Via', decision.via] : null,
        decision.not_before ? ['Not before', decision.not_before] : null,
        ['Consent it rests on', consent ? (consent.id + ' — ' + consent.scope + ' from ' + consent.source + ' at ' + consent.at + ' (client ' + consent.client + ')') : '—'],
      ]),
      h('h2', 'Decision trace'),
      table('Every rule looked at, in order', [
        { label: '#', num: true, value: (t) => t.i },
        { label: 'Rule', mono: true, value: (t) => t.rule },
        { label: 'Result', value: (t) => h('span', { class: t.result === 'skip' ? 'skip-step' : t.result }, t.result) },
        { label: 'Detail', value: (t) => t.detail },
      ], (decision.trace || []).map((t, i) => Object.assign({ i: i + 1 }, typeof t === 'object' ? t : { detail: t })), { name: 'trace' }),
    ];
  }

  function messageSections(m) {
    return [
      h('h2', 'Message'),
      kv([
        ['Id', h('code', m.id)],
        ['Status', h('span.status', { 'data-status': m.status }, m.status)],
        ['Category', m.category],
        ['Page', m.page_id],
        ['Recipient', m.recipient && m.recipient.psid ? link('#/recipient/' + encodeURIComponent(m.recipient.psid), m.recipient.psid) : m.recipient],
        ['Created', when(m.created_at)],
        ['Expires', when(m.expires_at)],
        ['Channel', h('span.channel', { 'data-channel': m.channel || 'messenger' }, m.channel || 'messenger')],
        ['Graph message id', m.graph_message_id],
        m.campaign ? ['Campaign', link('#/campaign/' + m.campaign, m.campaign)] : null,
      ]),
      decisionSection(m.decision),
      m.fallback ? [h('h2', 'Email fallback'), decisionSection(m.fallback).slice(1)] : null,
      h('h2', 'Attempts'),
      (m.attempts || []).length
        ? table('Each try at the Graph Send API, or at the SMTP server', [
          { label: 'At', value: (a) => when(a.at) },
          { label: 'Channel', value: (a) => a.channel || 'messenger' },
          { label: 'Outcome', value: (a) => outcomeSpan(a.outcome) },
          { label: 'HTTP', num: true, value: (a) => a.http_status },
          { label: 'Graph error', value: (a) => a.graph_error ? (a.graph_error.code + (a.graph_error.subcode ? '/' + a.graph_error.subcode : '') + (a.graph_error.message ? ' ' + a.graph_error.message : '')) : '—' },
          { label: 'Error or reply', value: (a) => a.error || a.reply },
          { label: 'Next attempt', value: (a) => when(a.next_attempt_at) },
        ], m.attempts, { name: 'attempts' })
        : h('p.muted', 'Not handed to the Graph API or the SMTP server (yet).'),
      h('h2', 'Status history'),
      table('Statuses', [
        { label: 'Status', value: (x) => x.status },
        { label: 'At', value: (x) => when(x.at) },
      ], m.history || [], { name: 'history' }),
    ];
  }

  async function entryPage(seq) {
    const entries = JSON.parse(sessionStorage.getItem(ENTRIES_KEY) || '[]');
    const entry = entries.find((e) => String(e.seq) === String(seq));
    const box = problemBox();
    if (!entry) {
      show('Audit entry ' + seq, h('p', 'This entry is not among the last search results. ', link('#/audit', 'Search the audit log'), ' and open it from there.'));
      return;
    }
    const body = h('div');
    show('Audit entry ' + seq, h('p', link('#/audit', '← Back to the results')), box,
      h('h2', 'Entry'),
      kv([
        ['Seq', entry.seq], ['At', when(entry.at)], ['Kind', entry.kind],
        ['Outcome', outcomeSpan(entry.outcome)], ['Reason', entry.reason],
        ['Rule', h('code', fmt(entry.rule))], ['Policy version', h('code', fmt(entry.policy_version))],
        ['Category', entry.category], ['Messaging type', entry.messaging_type], ['Tag', entry.tag],
        ['Recipient', entry.recipient ? link('#/recipient/' + encodeURIComponent(entry.recipient), entry.recipient) : (entry.erased ? 'erased' : '—')],
        ['Recipient pseudonym', h('code', fmt(entry.recipient_pseudonym))],
        ['Page', entry.page_id], ['Client', entry.client],
        ['Message', entry.message_id ? link('#/message/' + entry.message_id, entry.message_id) : '—'],
        ['Campaign', entry.campaign ? link('#/campaign/' + entry.campaign, entry.campaign) : '—'],
        ['Status', entry.status],
        ['Consent id', entry.consent_id], ['Consent source', entry.consent_source],
        ['Consent evidence', entry.consent_evidence],
        entry.email ? ['Email sent to', entry.email] : null,
        ['Channel', entry.channel || 'messenger'],
        ['Graph message id', entry.graph_message_id],
        ['Graph error', entry.graph_error],
        ['Content sha256', h('code', fmt(entry.content_sha256))],
        ['Detail', entry.detail], ['Erased', entry.erased],
        ['Previous hash', h('code', fmt(entry.prev_hash))], ['Hash', h('code', fmt(entry.hash))],
      ]),
      body);
    if (entry.message_id) {
      try {
        append(body, messageSections(await api.get('/v1/messages/' + encodeURIComponent(entry.message_id))));
      } catch (e) { report(box, e); }
    }
  }

  async function messagePage(id) {
    const box = problemBox();
    const body = h('div');
    show('Message ' + id, box, body);
    try {
      append(body, messageSections(await api.get('/v1/messages/' + encodeURIComponent(id))));
    } catch (e) { report(box, e); }
  }

  // ---- a recipient -----------------------------------------------------------------------

  async function recipientPage(psid) {
    const box = problemBox();
    const input = text('psid', { value: psid || '', required: true });
    const form = h('form.fields', { 'aria-label': 'Find a recipient' }, field('PSID', input),
      h('div.actions', h('button.primary', { type: 'submit' }, 'Show')));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); location.hash = '#/recipient/' + encodeURIComponent(input.value.trim()); });
    const body = h('div');
    show(psid ? 'Recipient ' + psid : 'Recipients', form, box, body);
    if (!psid) return;
    let r;
    try { r = await api.get('/v1/recipients/' + encodeURIComponent(psid)); } catch (e) { report(box, e); return; }
    const w = r.window || {};
    const t = r.marketing_token;
    const erase = h('button.danger', { type: 'button' }, 'Erase this person’s data');
    const done = h('div.notice', { role: 'status' });
    erase.addEventListener('click', async () => {
      const ok = await confirmDialog('Erase ' + psid + '?',
        'Their consent evidence, email, time zone, locale, Marketing Messages token and message content are erased for good. The audit chain stays and still verifies; nothing is sent to them until a new consent. Only an admin may do this.',
        psid, 'Erase');
      if (!ok) return;
      try {
        const report_ = await api.del('/v1/recipients/' + encodeURIComponent(psid));
        done.textContent = 'Erased at ' + report_.erased_at + ': ' + (report_.erased || []).join(', ') + ' — ' + report_.audit_entries + ' audit entries, ' + report_.messages + ' messages.';
      } catch (e) { report(box, e); }
    });
    append(body, [
      r.erased_at ? h('p.notice', 'This person’s data was erased at ' + r.erased_at + '.') : null,
      h('div.columns',
        h('section', h('h2', 'In force now'), kv([
          ['Transactional consent', r.consent ? r.consent.transactional : '—'],
          ['Marketing consent', r.consent ? r.consent.marketing : '—'],
          ['Opted out (transactional)', r.opt_outs ? r.opt_outs.transactional : '—'],
          ['Opted out (marketing)', r.opt_outs ? r.opt_outs.marketing : '—'],
          ['Unreachable since', r.unreachable_since],
          ['Time zone', r.timezone], ['Locale', r.locale],
        ])),
        h('section', h('h2', 'Messenger window'), kv([
          ['Open', w.open], ['Last interaction', w.last_user_interaction_at],
          ['Open until', w.open_until], ['Human agent until', w.human_agent_until],
        ]), h('h2', 'Marketing Messages token'), t ? kv([
          ['Status', t.status], ['Active', t.active], ['Frequency', t.frequency],
          ['Last sent', t.last_sent_at], ['Expires', t.expires_at], ['Page', t.page_id],
          ['Token ends in', t.token_hint],
        ]) : h('p.muted', 'No token.'))),
      h('h2', 'Consent history'),
      table('Every grant and opt-out, oldest first', [
        { label: 'At', value: (c) => c.at },
        { label: 'Id', mono: true, value: (c) => c.id },
        { label: 'Scope', value: (c) => c.scope },
        { label: 'Action', value: (c) => c.action },
        { label: 'Source', value: (c) => c.source },
        { label: 'Client', value: (c) => c.client },
        { label: 'Evidence', mono: true, value: (c) => c.evidence },
      ], r.consents || [], { name: 'consents' }),
      h('h2', 'Last messages'),
      table('The ten most recent messages', [
        { label: 'Message', mono: true, value: (m) => link('#/message/' + m.id, m.id) },
        { label: 'Category', value: (m) => m.category },
        { label: 'Status', value: (m) => m.status },
        { label: 'Created', value: (m) => m.created_at },
        { label: 'Sent', value: (m) => m.sent_at },
      ], r.last_messages || [], { name: 'messages' }),
      h('h2', 'Last decisions'),
      table('Newest first, with the consent each rests on', [
        { label: 'Seq', num: true, value: (d) => d.seq },
        { label: 'At', value: (d) => d.at },
        { label: 'Message', mono: true, value: (d) => d.message_id ? link('#/message/' + d.message_id, d.message_id) : '—' },
        { label: 'Category', value: (d) => d.category },
        { label: 'Outcome', value: (d) => outcomeSpan(d.outcome) },
        { label: 'Reason', value: (d) => d.reason },
        { label: 'Rule', mono: true, value: (d) => d.rule },
        { label: 'Consent', mono: true, value: (d) => d.consent_id ? d.consent_id + ' (' + d.consent_source + ')' : '—' },
      ], r.last_decisions || [], { name: 'decisions' }),
      (r.attributions || []).length ? [h('h2', 'Attributions'), table('Referrals', [
        { label: 'Ref', value: (a) => a.ref }, { label: 'Source', value: (a) => a.source },
        { label: 'Ad', value: (a) => a.ad_id }, { label: 'At', value: (a) => a.at },
      ], r.attributions)] : null,
      h('h2', 'Erase'),
      h('p.muted', 'Admin only; Herald refuses anyone else.'),
      h('div.actions', erase), done,
    ]);
  }

  // ---- verify and checkpoint -------------------------------------------------------------

  function verifyPage() {
    const box = problemBox();
    const out = h('section', { 'aria-live': 'polite' });
    const seq = h('input', { type: 'number', min: 0, name: 'checkpoint_seq', id: 'f-checkpoint_seq' });
    const head = text('checkpoint_head', { placeholder: 'sha256 hex' });
    // On PostgreSQL a checkpoint names each chain's head: `chain:seq:hash`, comma-separated.
    const chains = text('checkpoint_chains', { placeholder: 'PostgreSQL: chain:seq:hash,…' });
    async function verify() {
      report(box, null);
      try {
        const v = await api.get('/v1/audit/verify' + query({ checkpoint_seq: seq.value, checkpoint_head: head.value, checkpoint_chains: chains.value }));
        out.replaceChildren(h('h2', 'Verification'),
          h('p', { 'data-verified': String(v.ok) }, h('span', { class: v.ok ? 'ok' : 'bad' }, v.ok ? 'The chain verifies.' : 'The chain does NOT verify.')),
          kv([['Entries', v.entries], ['First seq', v.first_seq], ['Head seq', v.head_seq], ['Head', h('code', fmt(v.head))],
            v.first_bad_seq !== undefined ? ['First bad seq', v.first_bad_seq] : null,
            v.checkpoint ? ['Checkpoint', (v.checkpoint.ok ? 'matches' : 'does not match') + ' at seq ' + v.checkpoint.seq + (v.checkpoint.problem ? ': ' + v.checkpoint.problem : '')] : null]));
      } catch (e) { report(box, e); }
    }
    async function checkpoint() {
      report(box, null);
      try {
        const c = await api.get('/v1/audit/checkpoint');
        const save = h('button', { type: 'button', onclick: () => {
          const url = URL.createObjectURL(new Blob([JSON.stringify(c, null, 2)], { type: 'application/json' }));
          const a = h('a', { href: url, download: 'herald-checkpoint-' + c.seq + '.json' });
          document.body.appendChild(a); a.click(); a.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10000);
        } }, 'Download checkpoint JSON');
        const use = h('button', { type: 'button', onclick: () => {
          seq.value = c.seq; head.value = c.head;
          chains.value = (c.chains || []).map((x) => x.chain + ':' + x.seq + ':' + x.hash).join(',');
          verify();
        } }, 'Verify against it');
        out.replaceChildren(h('h2', 'Signed checkpoint'),
          h('p.muted', 'Keep it outside Herald: verifying with it later proves the log was only appended to since.'),
          kv([['Seq', c.seq], ['Head', h('code', c.head)], ['At', c.at], ['Key id', h('code', c.key_id)],
            ['Public key', h('code', c.public_key)], ['Signature (Ed25519 over seq|head|at)', h('code', c.signature)]]),
          h('div.actions', save, use));
      } catch (e) { report(box, e); }
    }
    const form = h('form.fields', { 'aria-label': 'Verify the chain' },
      field('Checkpoint seq (optional)', seq), field('Checkpoint head (optional)', head),
      field('Checkpoint chains (PostgreSQL)', chains),
      h('div.actions', h('button.primary', { type: 'submit' }, 'Verify the chain'),
        h('button', { type: 'button', onclick: checkpoint }, 'Take a signed checkpoint')));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); verify(); });
    show('Verify & checkpoint', h('p.muted', 'Walks the whole hash chain; with a checkpoint kept elsewhere, also checks the entry at its seq still has its hash.'),
      form, box, out);
  }

  // ---- campaigns -------------------------------------------------------------------------

  function totalDenied(counts) {
    return Object.values((counts && counts.denied) || {}).reduce((a, b) => a + b, 0);
  }
  function sentOf(counts) {
    return counts ? (counts.sent || 0) + (counts.delivered || 0) + (counts.read || 0) : 0;
  }

  async function campaignsPage() {
    const box = problemBox();
    const body = h('div');
    show('Campaigns', h('div.actions', h('a', { href: '#/campaigns/new' }, 'Create a campaign')), box, body);
    try {
      const { campaigns } = await api.get('/v1/campaigns');
      body.replaceChildren(campaigns.length ? table('Newest first', [
        { label: 'Name', value: (c) => link('#/campaign/' + c.id, c.name) },
        { label: 'Status', value: (c) => h('span.status', c.status) },
        { label: 'Audience', num: true, value: (c) => c.counts.audience },
        { label: 'Sent', num: true, value: (c) => sentOf(c.counts) },
        { label: 'Denied', num: true, value: (c) => totalDenied(c.counts) },
        { label: 'Starts', value: (c) => c.send_at },
        { label: 'Created by', value: (c) => c.created_by },
        { label: 'Id', mono: true, value: (c) => c.id },
      ], campaigns, { name: 'campaigns' }) : h('p.muted', 'No campaigns yet.'));
    } catch (e) { report(box, e); }
  }

  function newCampaignPage() {
    const box = problemBox();
    const name = text('name', { required: true, maxlength: 200 });
    const message = h('textarea', { name: 'message', id: 'f-message', required: true });
    const psids = h('textarea', { name: 'psids', id: 'f-psids', placeholder: '4242\n4243' });
    const csv = h('input', { type: 'file', name: 'csv', id: 'f-csv', accept: '.csv,text/csv' });
    const radio = (value, label, checked) => h('label', h('input', { type: 'radio', name: 'audience', value, checked }), ' ', label);
    const sendAt = text('send_at', { placeholder: 'now, or 2026-12-01T09:00:00Z' });
    const rate = h('input', { type: 'number', name: 'rate_per_second', id: 'f-rate_per_second', min: 1, placeholder: '50' });
    const quiet = h('input', { type: 'checkbox', name: 'respect_quiet_hours', id: 'f-respect_quiet_hours', checked: true });
    const firstPercent = h('input', { type: 'number', name: 'first_percent', id: 'f-first_percent', min: 1, max: 99 });
    const hold = text('hold', { placeholder: '2h' });
    const maxOptOut = h('input', { type: 'number', name: 'max_opt_out_percent', id: 'f-max_opt_out_percent', min: 0, step: 'any' });
    const minSends = h('input', { type: 'number', name: 'min_sends', id: 'f-min_sends', min: 1 });

    const form = h('form', { 'aria-label': 'New campaign' },
      h('div.fields', field('Name', name)),
      field('Message text', message, 'Sent as a Messenger text message.'),
      h('fieldset', h('legend', 'Audience'),
        h('div.actions', radio('psids', 'PSIDs', true), radio('csv', 'CSV upload'), radio('segment', 'Everyone opted in to marketing')),
        field('PSIDs, one per line (or separated by commas)', psids),
        field('CSV file with a psid column', csv)),
      h('fieldset', h('legend', 'Schedule and pace'),
        h('div.fields', field('Start at (RFC 3339, empty for now)', sendAt),
          field('Rate per second', rate),
          h('div.field', h('label', { for: quiet.id }, quiet, ' Respect quiet hours')))),
      h('fieldset', h('legend', 'Rollout (optional)'),
        h('div.fields', field('First part, % of the audience', firstPercent), field('Then hold for', hold, 'e.g. 30m, 2h'))),
      h('fieldset', h('legend', 'Guard (optional)'),
        h('div.fields', field('Pause above this opt-out %', maxOptOut), field('Once this many have gone', minSends))),
      h('div.actions', h('button.primary', { type: 'submit' }, 'Create campaign')));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      report(box, null);
      const audience = form.querySelector('input[name=audience]:checked').value;
      const fields = { name: name.value.trim(), message: { text: message.value } };
      if (sendAt.value.trim()) fields.send_at = sendAt.value.trim();
      if (rate.value) fields.rate_per_second = Number(rate.value);
      fields.respect_quiet_hours = quiet.checked;
      if (firstPercent.value || hold.value) fields.rollout = { first_percent: Number(firstPercent.value), hold: hold.value.trim() };
      if (maxOptOut.value || minSends.value) fields.guard = { max_opt_out_percent: Number(maxOptOut.value), min_sends: Number(minSends.value) };
      try {
        let created;
        if (audience === 'csv') {
          const file = csv.files[0];
          if (!file) throw new Error('Choose a CSV file with a psid column.');
          const params = {};
          for (const [k, v] of Object.entries(fields)) params[k] = typeof v === 'object' ? JSON.stringify(v) : v;
          created = await api.post('/v1/campaigns' + query(params), await file.text(), { contentType: 'text/csv' });
        } else {
          fields.audience = audience === 'segment' ? { segment: 'marketing_opted_in' }
            : { psids: psids.value.split(/[\s,;]+/).map((p) => p.trim()).filter(Boolean) };
          created = await api.post('/v1/campaigns', fields);
        }
        location.hash = '#/campaign/' + created.id;
      } catch (e) { report(box, e); }
    });
    show('New campaign', h('p', link('#/campaigns', '← Campaigns')), box, form);
    name.focus();
  }

  // Cumulative sends, one point per poll, kept per campaign in this tab.
  function samples(id) { return JSON.parse(sessionStorage.getItem('herald.samples.' + id) || '[]'); }
  function keepSample(id, t, sent) {
    const all = samples(id);
    const last = all[all.length - 1];
    if (!last || last[1] !== sent || t - last[0] > 5000) all.push([t, sent]);
    sessionStorage.setItem('herald.samples.' + id, JSON.stringify(all.slice(-600)));
    return all;
  }

  // The frame both charts share: 720×200, a y axis from 0 to yMax with three grid lines.
  const W = 720, H = 200, L = 44, R = 10, T = 10, B = 28;
  function chartFrame(label, yMax) {
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label });
    svg.appendChild(s('title', {}, label));
    const y = (v) => H - B - (v / yMax) * (H - T - B);
    for (const frac of [0, 0.5, 1]) {
      const v = Math.round(yMax * frac);
      svg.appendChild(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.appendChild(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    svg.appendChild(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    svg.appendChild(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const xLabels = (left, right) => {
      svg.appendChild(s('text', { x: L, y: H - 8 }, left));
      svg.appendChild(s('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, right));
    };
    return { svg, y, xLabels };
  }

  function lineChart(points, label) {
    const { svg, y, xLabels } = chartFrame(label, Math.max(1, ...points.map((p) => p[1])));
    const t0 = points.length ? points[0][0] : 0;
    const t1 = points.length ? Math.max(points[points.length - 1][0], t0 + 1000) : 1000;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    xLabels(points.length ? new Date(t0).toLocaleTimeString() : '', points.length ? new Date(t1).toLocaleTimeString() : '');
    if (points.length) {
      const d = points.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
      svg.appendChild(s('path', { class: 'line', d, 'data-points': String(points.length) }));
      // A dot per sample, so that a campaign finished between two polls still shows.
      for (const p of points) svg.appendChild(s('circle', { class: 'dot', cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 3 }));
    }
    return svg;
  }

  function barChart(values, label) {
    const { svg, y, xLabels } = chartFrame(label, Math.max(1, ...values));
    const bw = (W - L - R) / Math.max(1, values.length);
    values.forEach((v, i) => {
      if (v > 0) svg.appendChild(s('rect', { class: 'bar', x: L + i * bw + 1, y: y(v), width: Math.max(1, bw - 2), height: H - B - y(v) }));
    });
    xLabels('60 min ago', 'now');
    return svg;
  }

  async function campaignPage(id) {
    const box = problemBox();
    const live = h('div', { 'aria-live': 'polite' });
    const status = h('span.status#campaign-status');
    const control = (action, label, cls) => h('button', { type: 'button', class: cls || null, 'data-action': action, onclick: () => act(action) }, label);
    const buttons = { pause: control('pause', 'Pause'), resume: control('resume', 'Resume'), cancel: control('cancel', 'Cancel campaign', 'danger') };
    const chart = h('div');
    show('Campaign', h('p', link('#/campaigns', '← Campaigns')), box,
      h('p', 'Status: ', status),
      h('div.actions', buttons.pause, buttons.resume, buttons.cancel), live,
      h('h2', 'Sends over time'), chart);

    // Bumped by each action: a poll that was already on its way answers with the campaign
    // as it was before, and is not shown over the action's answer.
    let generation = 0;
    async function act(action) {
      report(box, null);
      generation += 1;
      if (action === 'cancel' && !(await confirmDialog('Cancel this campaign?', 'Nobody else gets it, and its waiting messages are cancelled. A cancelled campaign cannot be resumed.', 'cancel', 'Cancel campaign'))) return;
      try { render(await api.post('/v1/campaigns/' + encodeURIComponent(id) + '/' + action, {})); } catch (e) { report(box, e); }
    }
    function render(c) {
      main.querySelector('h1').textContent = 'Campaign: ' + c.name;
      document.title = 'Campaign: ' + c.name + ' — Herald console';
      status.textContent = c.status + (c.paused_reason ? ' (' + c.paused_reason + ')' : '');
      status.dataset.status = c.status;
      buttons.pause.disabled = !['scheduled', 'running'].includes(c.status);
      buttons.resume.disabled = c.status !== 'paused';
      buttons.cancel.disabled = FINISHED.includes(c.status);
      const n = c.counts || {};
      const handled = sentOf(n) + (n.failed || 0) + (n.expired || 0) + (n.cancelled || 0) + totalDenied(n);
      live.replaceChildren(
        h('label', { for: 'campaign-progress' }, 'Handled ' + handled + ' of ' + (n.audience || 0)),
        h('progress#campaign-progress', { max: Math.max(1, n.audience || 0), value: handled }),
        h('div.cards',
          ['audience', 'pending', 'deferred', 'sent', 'delivered', 'read', 'failed', 'expired', 'cancelled', 'opt_outs']
            .map((k) => card(k.replace('_', ' '), n[k] || 0, k))),
        h('h2', 'Denied, by reason'),
        Object.keys(n.denied || {}).length
          ? table('Refused by the policy', [
            { label: 'Reason', value: (r) => r[0] },
            { label: 'Recipients', num: true, value: (r) => r[1] },
          ], Object.entries(n.denied), { name: 'denied' })
          : h('p.muted', 'None denied.'),
        h('h2', 'Settings'),
        kv([['Id', h('code', c.id)], ['Page', c.page_id], ['Starts', c.send_at], ['Rate per second', c.rate_per_second],
          ['Quiet hours respected', c.respect_quiet_hours],
          ['Rollout', c.rollout ? c.rollout.first_percent + '% first, then hold ' + c.rollout.hold_seconds + ' s' : '—'],
          ['Guard', c.guard ? 'pause above ' + c.guard.max_opt_out_percent + '% opt-outs once ' + c.guard.min_sends + ' have gone' : '—'],
          ['Created by', c.created_by], ['Created', c.created_at], ['Finished', c.finished_at]]));
      chart.replaceChildren(lineChart(keepSample(id, Date.now(), sentOf(n)), 'Messages sent (sent, delivered or read), as watched from this page'));
    }
    async function poll() {
      const asked = generation;
      try {
        const c = await api.get('/v1/campaigns/' + encodeURIComponent(id));
        if (asked !== generation) return;
        render(c);
        if (FINISHED.includes(c.status)) { for (const t of timers) clearInterval(t); timers = []; }
      } catch (e) {
        report(box, e);
        for (const t of timers) clearInterval(t);
        timers = [];
      }
    }
    await poll();
    if (!FINISHED.includes(status.dataset.status) && !box.textContent) timers.push(setInterval(poll, 1000));
  }

  // ---- event endpoints (admin) -----------------------------------------------------------

  // An endpoint's health in a word: off, failing since a moment, or fine.
  function health(ep) {
    if (ep.disabled) return h('span.status', { 'data-health': 'disabled' }, 'disabled');
    if (ep.failing_since) return h('span.status', { 'data-health': 'failing' }, 'failing since ', when(ep.failing_since));
    return h('span.status', { 'data-health': 'healthy' }, 'healthy');
  }

  async function endpointsPage() {
    const box = problemBox();
    const body = h('div');
    show('Event endpoints', h('p.muted', 'Where Herald posts its events (signed Standard Webhooks), and how each is doing.'),
      h('div.actions', h('a', { href: '#/endpoints/new' }, 'Add an endpoint')), box, body);
    try {
      const { endpoints } = await api.get('/v1/event-endpoints');
      body.replaceChildren(endpoints.length ? table('Oldest first', [
        { label: 'URL', value: (e) => link('#/endpoint/' + e.id, e.url) },
        { label: 'Health', value: (e) => health(e) },
        { label: 'Events', value: (e) => e.events.join(', ') },
        { label: 'Format', value: (e) => e.format },
        { label: 'Description', value: (e) => e.description },
        { label: 'Id', mono: true, value: (e) => e.id },
      ], endpoints, { name: 'endpoints' }) : h('p.muted', 'No endpoints yet.'));
    } catch (e) { report(box, e); }
  }

  function newEndpointPage() {
    const box = problemBox();
    const inputs = {
      url: h('input', { type: 'url', name: 'url', id: 'f-url', required: true, placeholder: 'https://crm.example.com/herald' }),
      events: text('events', { value: '*' }),
      format: select('format', ['herald', 'messenger']),
      description: text('description'),
    };
    const secret = h('div', { 'aria-live': 'polite' });
    const form = h('form.fields', { 'aria-label': 'New endpoint' },
      field('URL', inputs.url),
      field('Events', inputs.events, 'Comma-separated: types (message.sent), families (message.*) or * for all.'),
      field('Format', inputs.format, 'messenger: inbound events as Messenger posted them, for a helpdesk.'),
      field('Description', inputs.description),
      h('div.actions', h('button', { type: 'submit' }, 'Add the endpoint')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      report(box, null);
      const body = {
        url: inputs.url.value.trim(),
        events: inputs.events.value.split(',').map((t) => t.trim()).filter(Boolean),
        format: inputs.format.value,
      };
      if (inputs.description.value.trim()) body.description = inputs.description.value.trim();
      try {
        const created = await api.post('/v1/event-endpoints', body);
        form.remove();
        secret.replaceChildren(h('p', 'Endpoint ', link('#/endpoint/' + created.id, created.id), ' added.'),
          h('p', h('strong', 'Its signing secret, shown once: '), h('code#endpoint-secret', created.secret)),
          h('p.muted', 'Keep it with the receiver; it verifies each delivery\'s webhook-signature.'));
      } catch (e) { report(box, e); }
    });
    show('New event endpoint', h('p', link('#/endpoints', '← Event endpoints')), box, form, secret);
  }

  async function endpointPage(id) {
    const box = problemBox();
    const path = '/v1/event-endpoints/' + encodeURIComponent(id);
    const details = h('div');
    const answer = h('div', { 'aria-live': 'polite' });
    const attempts = h('div');
    const since = text('since', { placeholder: '2026-12-01T00:00:00Z' });
    const replay = h('form.fields', { 'aria-label': 'Replay' },
      field('Replay every event since (RFC 3339)', since),
      h('div.actions', h('button', { type: 'submit' }, 'Replay')));
    const toggle = h('button', { type: 'button', 'data-action': 'toggle' }, '…');
    const buttons = h('div.actions',
      h('button', { type: 'button', 'data-action': 'test', onclick: () => act(() => api.post(path + '/test', {}), 'A test event was sent.') }, 'Send a test event'),
      toggle,
      h('button.danger', { type: 'button', 'data-action': 'rotate', onclick: rotate }, 'Rotate the secret'));
    show('Event endpoint', h('p', link('#/endpoints', '← Event endpoints')), box, details, buttons, answer,
      h('h2', 'Replay'), replay, h('h2', 'Recent failed attempts'), attempts);

    async function act(call, done) {
      report(box, null);
      try {
        const r = await call();
        answer.replaceChildren(h('p.notice', typeof done === 'function' ? done(r) : done));
        await load();
      } catch (e) { report(box, e); }
    }
    async function rotate() {
      if (!(await confirmDialog('Rotate the signing secret?', 'A new secret signs every delivery; the old one keeps signing beside it for 24 hours, so the receiver can move over.', 'rotate', 'Rotate'))) return;
      await act(() => api.post(path + '/rotate-secret', {}),
        (r) => append(h('span'), ['New secret, shown once: ', h('code#endpoint-secret', r.secret)]));
    }
    replay.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(() => api.post(path + '/replay', { since: since.value.trim() }), (r) => 'Replaying ' + r.events + ' events.');
    });
    async function load() {
      const [ep, failed] = await Promise.all([api.get(path), api.get(path + '/attempts' + query({ status: 'failed', limit: 20 }))]);
      main.querySelector('h1').textContent = 'Event endpoint: ' + ep.url;
      details.replaceChildren(kv([['Id', h('code', ep.id)], ['URL', ep.url], ['Health', health(ep)],
        ['Events', ep.events.join(', ')], ['Format', ep.format], ['Description', ep.description],
        ['Created', when(ep.created_at)]]));
      toggle.textContent = ep.disabled ? 'Enable' : 'Disable';
      toggle.onclick = () => act(() => request('PATCH', path, { body: { disabled: !ep.disabled } }),
        ep.disabled ? 'Enabled: deliveries resume.' : 'Disabled: nothing is sent until it is enabled.');
      const list = failed.attempts || [];
      attempts.replaceChildren(list.length ? table('Newest first', [
        { label: 'At', value: (a) => when(a.at) },
        { label: 'Event', mono: true, value: (a) => a.event_id },
        { label: 'Type', value: (a) => a.event_type },
        { label: 'HTTP', num: true, value: (a) => a.http_status },
        { label: 'Error', value: (a) => a.error },
        { label: 'Attempt', num: true, value: (a) => a.attempt },
      ], list, { name: 'failed-attempts' }) : h('p.muted', 'No failed attempts.'));
    }
    try { await load(); } catch (e) { report(box, e); }
  }

  // ---- operator status -------------------------------------------------------------------

  async function statusPage() {
    const box = problemBox();
    const body = h('div', { 'aria-live': 'polite' });
    show('Status', h('p.muted', 'Refreshed every 5 seconds.'), box, body);
    async function refresh() {
      try {
        const [ready, st] = await Promise.all([
          fetch('/readyz', { cache: 'no-store' }).then((r) => r.json()),
          api.get('/v1/status'),
        ]);
        const d = st.deliveries;
        body.replaceChildren();
        append(body, [
          h('div.cards',
            card('Ready', ready.status, 'ready'),
            card('Outbox depth', st.outbox.depth, 'outbox'),
            card('Behind (s)', st.outbox.behind_seconds, 'behind'),
            card('Audit entries', st.audit_entries, 'audit'),
            ...Object.entries(d.by_result).map(([k, v]) => card(k + ' (1 h)', v, 'result-' + k))),
          kv([['Oldest pending due at', st.outbox.oldest_due_at], ['Policy version', h('code', st.policy_version)],
            ['Read at', st.at], ['Last hour', d.from + ' → ' + d.to + (d.truncated ? ' (counts truncated: lower bounds)' : '')]]),
          h('h2', 'Deliveries by result, last hour'),
          table('Graph Send API attempts', [
            { label: 'Result', value: (r) => r[0] }, { label: 'Attempts', num: true, value: (r) => r[1] },
          ], Object.entries(d.by_result), { name: 'by-result' }),
          Object.keys(d.by_graph_error).length ? [h('h2', 'Graph errors, last hour'), table('By code/subcode', [
            { label: 'Code', value: (r) => r[0] }, { label: 'Attempts', num: true, value: (r) => r[1] },
          ], Object.entries(d.by_graph_error))] : null,
          h('h2', 'Sends per minute, last hour'),
          barChart(d.sent_per_minute, 'Messages sent per minute over the last hour')]);
      } catch (e) {
        report(box, e);
        for (const t of timers) clearInterval(t);
        timers = [];
      }
    }
    await refresh();
    if (!box.textContent) timers.push(setInterval(refresh, 5000));
  }

  // ---- routing ---------------------------------------------------------------------------

  function route() {
    takeTokenFromUrl();
    renderChrome();
    const path = location.hash.replace(/^#\/?/, '');
    const [page, ...rest] = path.split('/');
    const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
    if (!token() || page === 'sign-in') return signInPage();
    switch (page) {
      case 'audit': return auditPage();
      case 'entry': return entryPage(arg);
      case 'message': return messagePage(arg);
      case 'recipient': return recipientPage(arg);
      case 'verify': return verifyPage();
      case 'campaigns': return arg === 'new' ? newCampaignPage() : campaignsPage();
      case 'campaign': return campaignPage(arg);
      case 'endpoints': return arg === 'new' ? newEndpointPage() : endpointsPage();
      case 'endpoint': return endpointPage(arg);
      case 'status': return statusPage();
      default: location.replace(home()); return undefined;
    }
  }

  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.clear();
    location.hash = '#/sign-in';
    renderChrome();
  });
  window.addEventListener('hashchange', route);
  route();
})();
