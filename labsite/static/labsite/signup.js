/* The sign-up pages' script. It sends a form with fetch() or a synchronous request and shows the answer, follows
 * a deferred task until its email went out, and keeps what the lab's browser probe reads (window.labReport()):
 * - performance marks: lab:click (at the click event's own timestamp), lab:answer (the server's answer on screen:
 *   "sent" or "queued"), lab:delivered (the email known to be sent, on screen);
 * - every web-vitals report (INP, TTFB), copied into sessionStorage as it is made: a report made while a
 *   navigation hides the page survives into the tab's next page, where the probe reads it.
 * "On screen" means after the next paint: a requestAnimationFrame callback runs just before the frame is
 * painted, a task queued from it runs after. */
(() => {
  'use strict';
  const page = document.body.dataset.page;
  const pollMs = Number(document.body.dataset.pollMs) || 100;
  const maxPolls = Math.ceil(60000 / pollMs); // a page gives up following a task after about a minute

  const read = (key, fallback) => {
    const value = sessionStorage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  };
  const keep = (key, value) => sessionStorage.setItem(key, JSON.stringify(value));

  const recordVital = (metric) => {
    const a = metric.attribution || {};
    const reports = read('lab:vitals', []);
    reports.push({
      page, name: metric.name, value: metric.value, rating: metric.rating,
      inputDelay: a.inputDelay, processingDuration: a.processingDuration,
      presentationDelay: a.presentationDelay, interactionType: a.interactionType,
      interactionTarget: a.interactionTarget,
    });
    keep('lab:vitals', reports);
  };
  if (window.webVitals) {
    // reportAllChanges: INP is reported as soon as it is known, not only when the page is hidden.
    webVitals.onINP(recordVital, {reportAllChanges: true});
    webVitals.onTTFB(recordVital);
  }

  const nextPaint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const finish = (state) => { document.body.dataset.labDone = state; };

  async function show(output, text, marks, className = '') {
    output.textContent = text;
    output.className = className;
    await nextPaint();
    const at = performance.now();
    for (const name of marks) performance.mark(name, {startTime: at});
  }

  function parse(status, text, location = null) {
    try {
      return {status, body: JSON.parse(text), location};
    } catch {
      return {status, body: {error: text.slice(0, 200)}, location}; // e.g. Django's HTML page for a CSRF failure
    }
  }

  async function post(form, mode) {
    const body = new URLSearchParams(new FormData(form)); // the CSRF token travels with the fields
    const headers = {'Accept': 'application/json', 'Content-Type': 'application/x-www-form-urlencoded'};
    if (mode === 'xhr') {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', form.action, false); // synchronous: the main thread waits for the server
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.send(body.toString());
      return parse(xhr.status, xhr.responseText, xhr.getResponseHeader('Location'));
    }
    const response = await fetch(form.action, {method: 'POST', headers, body, credentials: 'same-origin'});
    return parse(response.status, await response.text(), response.headers.get('Location'));
  }

  // statusUrl: where the server said the task's state can be followed (a 202's Location).
  async function followTask(output, statusUrl) {
    for (let poll = 0; poll < maxPolls; poll++) {
      await sleep(pollMs);
      let status;
      try {
        const response = await fetch(statusUrl, {headers: {'Accept': 'application/json'}});
        status = (await parse(response.status, await response.text())).body;
      } catch (error) {
        status = {error: String(error)};
      }
      if (status.state === 'delivered') {
        await show(output, 'Welcome email sent', ['lab:delivered']);
        return finish('delivered');
      }
      if (status.state === 'failed' || status.error) {
        await show(output, `Sending failed: ${status.error}`, [], 'error');
        return finish('failed');
      }
    }
    await show(output, 'Still queued: gave up waiting', [], 'error');
    return finish('gave-up');
  }

  async function send(form, mode, output) {
    let answer;
    try {
      answer = await post(form, mode);
    } catch (error) {
      answer = {status: 0, body: {error: String(error)}};
    }
    const {status, body, location} = answer;
    if (status === 200 && body.state === 'delivered') {
      await show(output, 'Welcome email sent', ['lab:answer', 'lab:delivered']);
      return finish('delivered');
    }
    if (status === 202 && body.state === 'queued') {
      await show(output, 'Welcome email queued', ['lab:answer']);
      return followTask(output, location);
    }
    await show(output, `Refused (${status}): ${body.error || 'no reason given'}`, ['lab:answer'], 'error');
    return finish('refused');
  }

  if (page === 'signup') {
    for (const form of document.querySelectorAll('form.signup')) {
      form.addEventListener('click', (event) => {
        const button = event.target.closest('button');
        if (!button) return;
        const mode = button.dataset.mode || 'form';
        performance.mark('lab:click', {startTime: event.timeStamp});
        keep('lab:click', {epoch: performance.timeOrigin + event.timeStamp, path: form.dataset.path, mode});
        if (mode === 'form') return; // the browser posts the form and navigates to the result page
        const output = form.querySelector('output');
        output.textContent = 'Sending…';
        output.className = '';
        send(form, mode, output);
      });
    }
  }

  if (page === 'done') {
    // The answer is this page's own content: it is on screen at the page's first contentful paint.
    (async () => {
      const output = document.getElementById('result');
      await nextPaint();
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      const shown = fcp ? fcp.startTime : performance.now();
      performance.mark('lab:answer', {startTime: shown});
      if (output.dataset.statusUrl) return followTask(output, output.dataset.statusUrl);
      performance.mark('lab:delivered', {startTime: shown});
      return finish('delivered');
    })();
  }

  const TIMING_FIELDS = ['name', 'initiatorType', 'startTime', 'redirectStart', 'redirectEnd', 'fetchStart',
    'requestStart', 'responseStart', 'responseEnd', 'duration', 'redirectCount', 'type'];
  const timing = (entry) => entry && {
    ...Object.fromEntries(TIMING_FIELDS.filter((f) => f in entry).map((f) => [f, entry[f]])),
    serverTiming: (entry.serverTiming || []).map((s) => ({name: s.name, duration: s.duration})),
  };

  // What the probe reads once the page says it is done (body[data-lab-done]).
  window.labReport = () => ({
    page,
    path: location.pathname,
    timeOrigin: performance.timeOrigin,
    done: document.body.dataset.labDone || null,
    navigation: timing(performance.getEntriesByType('navigation')[0]),
    resources: performance.getEntriesByType('resource')
      .filter((e) => e.initiatorType === 'fetch' || e.initiatorType === 'xmlhttprequest').map(timing),
    marks: Object.fromEntries(performance.getEntriesByType('mark')
      .filter((m) => m.name.startsWith('lab:')).map((m) => [m.name, m.startTime])),
    click: read('lab:click', null),
    vitals: read('lab:vitals', []),
  });
  document.documentElement.dataset.labReady = '1';
})();
