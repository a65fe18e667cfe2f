// vmail web inbox: a little progressive JavaScript on server-rendered
// pages. Everything works without it; with it, playing a message to its
// end marks it heard, a delete can be undone for 5 seconds, and greetings
// can be recorded in the browser. No framework, no build step.
(function () {
  'use strict';

  var UNDO_MS = 5000;
  var RECORD_RATE = 16000;
  var RECORD_MAX_S = 180;

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute('content') : '';
  }

  // POST a form-encoded body with the CSRF token in the header and field.
  function post(url, fields) {
    var body = new URLSearchParams();
    body.append('csrf', csrfToken());
    Object.keys(fields || {}).forEach(function (k) { body.append(k, fields[k]); });
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrfToken() },
      body: body
    });
  }

  function setCount(id, delta) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var n = parseInt(el.textContent, 10);
    if (!isNaN(n)) { el.textContent = String(Math.max(0, n + delta)); }
  }

  function currentFolder() {
    var q = new URLSearchParams(window.location.search);
    return q.get('folder') === 'Old' ? 'Old' : 'INBOX';
  }

  // ----- played to the end: heard, like the phone -----
  function watchPlayers() {
    var rows = document.querySelectorAll('li.message, tr.message');
    Array.prototype.forEach.call(rows, function (row) {
      var audio = row.querySelector('audio.player');
      if (!audio) { return; }
      audio.addEventListener('ended', function () {
        if (!row.classList.contains('unheard')) { return; }
        var id = row.getAttribute('data-id');
        post('/messages/' + encodeURIComponent(id) + '/heard', { heard: 'true' })
          .then(function (r) {
            if (!r.ok) { return; }
            row.classList.remove('unheard');
            row.classList.add('heard');
            if (currentFolder() === 'INBOX') {
              setCount('count-new', -1);
              setCount('count-old', 1);
            }
          })
          .catch(function () { /* the next page load shows the truth */ });
      });
    });
  }

  // ----- delete with undo -----
  var pending = null; // { row, form, timer }

  function sendDelete(p) {
    var id = p.row.getAttribute('data-id');
    return post('/messages/' + encodeURIComponent(id) + '/delete', {})
      .then(function (r) {
        if (r.ok) {
          p.row.parentNode && p.row.parentNode.removeChild(p.row);
          setCount(currentFolder() === 'Old' ? 'count-old' : 'count-new', -1);
          if (!document.querySelector('li.message, tr.message')) {
            window.location.reload();
          }
        } else {
          p.row.hidden = false;
        }
      })
      .catch(function () { p.row.hidden = false; });
  }

  function hideUndo() {
    var undo = document.getElementById('undo');
    if (undo) { undo.hidden = true; }
  }

  function flushPending() {
    if (!pending) { return; }
    var p = pending;
    pending = null;
    clearTimeout(p.timer);
    hideUndo();
    sendDelete(p);
  }

  function watchDeletes() {
    var undo = document.getElementById('undo');
    var undoButton = document.getElementById('undo-button');
    if (!undo || !undoButton) { return; }
    undoButton.addEventListener('click', function () {
      if (!pending) { return; }
      clearTimeout(pending.timer);
      pending.row.hidden = false;
      var focusTo = pending.row.querySelector('form.delete button');
      pending = null;
      hideUndo();
      if (focusTo) { focusTo.focus(); }
    });
    var forms = document.querySelectorAll('form.delete');
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener('submit', function (ev) {
        var row = form.closest('.message');
        if (!row) { return; }
        ev.preventDefault();
        flushPending();
        var audio = row.querySelector('audio');
        if (audio) { audio.pause(); }
        row.hidden = true;
        undo.hidden = false;
        undoButton.focus();
        pending = { row: row, form: form, timer: 0 };
        var mine = pending;
        mine.timer = setTimeout(function () {
          if (pending === mine) { flushPending(); }
        }, UNDO_MS);
      });
    });
    // Leaving the page: the pending delete is sent now.
    window.addEventListener('pagehide', function () {
      if (!pending) { return; }
      var p = pending;
      pending = null;
      var data = new FormData();
      data.append('csrf', csrfToken());
      var id = p.row.getAttribute('data-id');
      if (navigator.sendBeacon) {
        navigator.sendBeacon('/messages/' + encodeURIComponent(id) + '/delete', data);
      }
    });
  }

  // ----- recording greetings -----
  function encodeWav(samples, rate) {
    var buffer = new ArrayBuffer(44 + samples.length * 2);
    var v = new DataView(buffer);
    function str(off, s) { for (var i = 0; i < s.length; i++) { v.setUint8(off + i, s.charCodeAt(i)); } }
    str(0, 'RIFF');
    v.setUint32(4, 36 + samples.length * 2, true);
    str(8, 'WAVE');
    str(12, 'fmt ');
    v.setUint32(16, 16, true);
    v.setUint16(20, 1, true);          // PCM
    v.setUint16(22, 1, true);          // mono
    v.setUint32(24, rate, true);
    v.setUint32(28, rate * 2, true);   // bytes per second
    v.setUint16(32, 2, true);          // block align
    v.setUint16(34, 16, true);         // bits per sample
    str(36, 'data');
    v.setUint32(40, samples.length * 2, true);
    for (var i = 0; i < samples.length; i++) {
      var s = Math.max(-1, Math.min(1, samples[i]));
      v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buffer], { type: 'audio/wav' });
  }

  // Averages the input down to `to` Hz (box filter, enough for speech).
  function downsample(chunks, from, to) {
    var total = 0;
    chunks.forEach(function (c) { total += c.length; });
    var all = new Float32Array(total);
    var off = 0;
    chunks.forEach(function (c) { all.set(c, off); off += c.length; });
    if (from <= to) { return all; }
    var ratio = from / to;
    var out = new Float32Array(Math.floor(total / ratio));
    for (var i = 0; i < out.length; i++) {
      var start = Math.floor(i * ratio);
      var end = Math.min(total, Math.floor((i + 1) * ratio));
      var sum = 0;
      for (var j = start; j < end; j++) { sum += all[j]; }
      out[i] = end > start ? sum / (end - start) : 0;
    }
    return out;
  }

  function upload(kind, blob) {
    var data = new FormData();
    data.append('csrf', csrfToken());
    data.append('file', blob, 'greeting-' + kind + '.wav');
    return fetch('/greetings/' + encodeURIComponent(kind), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrfToken() },
      body: data
    }).then(function (r) {
      window.location.assign('/greetings?note=' + (r.ok ? 'greeting-saved' : 'greeting-failed'));
    });
  }

  function watchRecorders() {
    var AudioCtx = window.AudioContext || window.webkitAudioContext;
    var canRecord = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && AudioCtx);
    var buttons = document.querySelectorAll('button.record');
    Array.prototype.forEach.call(buttons, function (button) {
      if (!canRecord) { button.hidden = true; return; }
      button.hidden = false;
      var startLabel = button.textContent;
      var rec = null;
      function stop() {
        if (!rec) { return; }
        var r = rec;
        rec = null;
        clearTimeout(r.limit);
        r.node.disconnect();
        r.source.disconnect();
        r.stream.getTracks().forEach(function (t) { t.stop(); });
        var rate = r.ctx.sampleRate;
        r.ctx.close();
        button.disabled = true;
        button.setAttribute('aria-pressed', 'false');
        var pcm = downsample(r.chunks, rate, RECORD_RATE);
        upload(button.getAttribute('data-kind'), encodeWav(pcm, Math.min(rate, RECORD_RATE)))
          .catch(function () { button.disabled = false; button.textContent = startLabel; });
      }
      button.addEventListener('click', function () {
        if (rec) { stop(); return; }
        navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
          var ctx = new AudioCtx();
          var source = ctx.createMediaStreamSource(stream);
          var node = ctx.createScriptProcessor(4096, 1, 1);
          var chunks = [];
          node.onaudioprocess = function (e) {
            chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
          };
          source.connect(node);
          node.connect(ctx.destination);
          rec = { stream: stream, ctx: ctx, source: source, node: node, chunks: chunks, limit: 0 };
          rec.limit = setTimeout(stop, RECORD_MAX_S * 1000);
          button.textContent = button.getAttribute('data-stop-label') || startLabel;
          button.setAttribute('aria-pressed', 'true');
        }).catch(function () {
          button.hidden = true;
        });
      });
    });
  }

  function start() {
    watchPlayers();
    watchDeletes();
    watchRecorders();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
