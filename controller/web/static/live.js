// communecast panel, "Phát trực tiếp": microphone -> AudioWorklet (16 kHz S16LE frames) ->
// WebSocket -> controller -> every station. No libraries. See docs/live.md.
(function () {
  "use strict";
  var card = document.getElementById("live-card");
  if (!card) return;
  var micBtn = document.getElementById("live-mic");
  var stopBtn = document.getElementById("live-stop");
  var level = document.getElementById("live-level");
  var listeners = document.getElementById("live-listeners");
  var stations = document.getElementById("live-stations");
  var statusEl = document.getElementById("live-status");
  var csrf = card.getAttribute("data-csrf");
  var session = null, ws = null, ctx = null, stream = null, ending = false;

  function say(key) { statusEl.textContent = card.getAttribute("data-msg-" + key) || ""; }

  function post(url, data) {
    data.append("csrf", csrf);
    return fetch(url, { method: "POST", body: data, credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || String(r.status));
        return body;
      });
    });
  }

  function cleanup() {
    if (ws) { try { ws.close(); } catch (e) { /* closed */ } }
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    if (ctx) ctx.close();
    ws = ctx = stream = null;
    level.value = 0;
    micBtn.hidden = false;
    micBtn.disabled = false;
    stopBtn.hidden = true;
  }

  function start() {
    micBtn.disabled = true;
    say("starting");
    navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true }
    }).then(function (s) {
      stream = s;
      return post("/live/start", new FormData(document.getElementById("live-form")));
    }, function () {
      say("nomic");
      micBtn.disabled = false;
      throw null;
    }).then(function (body) {
      session = body;
      ending = false;
      stations.textContent = String(body.stations);
      ctx = new AudioContext();
      return ctx.audioWorklet.addModule(card.getAttribute("data-worklet"));
    }).then(function () {
      var src = ctx.createMediaStreamSource(stream);
      var node = new AudioWorkletNode(ctx, "cc-pcm16k");
      var mute = ctx.createGain();
      mute.gain.value = 0; // keeps the graph running without echoing the operator
      src.connect(node);
      node.connect(mute);
      mute.connect(ctx.destination);
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      // The CSRF token travels as a subprotocol, so it never shows in a URL or an access log.
      ws = new WebSocket(scheme + location.host + session.ws_path, ["communecast.live", "csrf." + csrf]);
      ws.binaryType = "arraybuffer";
      ws.onopen = function () { say("live"); micBtn.hidden = true; stopBtn.hidden = false; };
      ws.onmessage = function (ev) {
        var msg = JSON.parse(ev.data);
        if (msg.type === "status") listeners.textContent = String(msg.listeners);
        if (msg.type === "ended") { say("ended"); cleanup(); }
      };
      ws.onclose = function () { if (!ending && session) say("lost"); };
      node.port.onmessage = function (ev) {
        level.value = Math.min(1, ev.data.level * 4);
        if (ws && ws.readyState === 1) ws.send(ev.data.pcm);
      };
    }).catch(function (err) {
      if (err) statusEl.textContent = err.message || String(err);
      cleanup();
    });
  }

  function stop() {
    if (!session) return;
    ending = true;
    stopBtn.disabled = true;
    post("/live/" + session.id + "/end", new FormData()).then(function () {
      say("ended");
    }, function (err) {
      statusEl.textContent = err.message || String(err);
    }).then(function () {
      stopBtn.disabled = false;
      session = null;
      cleanup();
    });
  }

  micBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
})();
