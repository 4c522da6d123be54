// The web chat page: one WebSocket to the assistant, a session kept in localStorage.
// Bot text is only ever set with textContent (never innerHTML), links and images only
// with http(s) or same-site URLs, so nothing the bot says can run as code here.
// A message the server refuses as too fast ("rate_limited") stays queued: the page
// waits the seconds the server names, says so, and sends it again.
// While the bot's turn runs the server says {"type": "typing", "active": true}, and
// false when it ends: the page shows "Assistant is typing" between the two, and drops
// it when the connection is lost, when a message fails, or after TYPING_TIMEOUT_MS
// without a word from the bot. A conversation without messages comes with a greeting
// and suggested questions (in the history frame); a click sends the question as text.
// The page's own words (labels, placeholder, status lines) follow the browser's
// languages: the first of navigator.languages that is Chinese (any zh-*) or English
// picks TEXTS.zh (simplified) or TEXTS.en; the page's lang says which. A bubble with
// Chinese in it is marked lang="zh-Hans" whatever the page's language, so a CJK font
// for simplified Chinese draws it. Enter while an input method is composing (choosing
// a Chinese word from pinyin) picks the word and never sends the message.
// Why a message or a file was refused comes from the server in English, worded for its
// logs ("message text longer than 4000 characters"): the English page shows it as it
// is; the Chinese page says the reasons a customer can meet in Chinese (TEXTS.zh.reasons,
// matched by the server's wording) and any other as a general sentence.
(function () {
  "use strict";

  var root = document.getElementById("webchat");
  var log = document.getElementById("webchat-log");
  var statusLine = document.getElementById("webchat-status");
  var form = document.getElementById("webchat-form");
  var input = document.getElementById("webchat-input");
  var attach = document.getElementById("webchat-attach");
  var fileInput = document.getElementById("webchat-file");

  var TEXTS = {
    en: {
      lang: "en",
      conversation: "Conversation",
      connecting: "Connecting…",
      connected: "Connected",
      reconnecting: "Reconnecting…",
      attach: "Attach a photo or PDF",
      yourMessage: "Your message",
      placeholder: "Type your message and press Enter",
      send: "Send",
      youSaid: "You said: ",
      assistant: "Assistant: ",
      typing: "Assistant is typing",
      image: "Image from the assistant",
      choices: "Choices",
      suggestions: "Suggested questions",
      notSent: "The message could not be sent: ",
      tooLong: "That message is too long to send; please shorten it.",
      seconds: function (count) { return count === 1 ? "1 second" : count + " seconds"; },
      busy: function (wait) { return "The chat is busy right now; trying again in " + wait + "."; },
      quickly: function (wait) { return "You're sending messages quickly, so I'll send yours in " + wait + "."; },
      notConnected: "Not connected yet; try again in a moment.",
      fileTooLarge: function (mb) { return "That file is too large (at most " + mb + " MB)."; },
      filesQuickly: function (wait) { return "You're sending files quickly, so I'll send yours in " + wait + "."; },
      fileNotSent: "The file could not be sent: ",
      fileOffline: "The file could not be sent; check your connection."
    },
    zh: {
      lang: "zh-Hans",
      conversation: "对话",
      connecting: "正在连接…",
      connected: "已连接",
      reconnecting: "正在重新连接…",
      attach: "添加照片或 PDF",
      yourMessage: "您的消息",
      placeholder: "输入消息，按回车发送",
      send: "发送",
      youSaid: "您说：",
      assistant: "客服助手：",
      typing: "客服助手正在输入",
      image: "客服助手发送的图片",
      choices: "选项",
      suggestions: "推荐问题",
      notSent: "消息未能发送：",
      tooLong: "消息太长，无法发送，请缩短后再试。",
      seconds: function (count) { return count + " 秒"; },
      busy: function (wait) { return "当前咨询人数较多，将在 " + wait + "后重试。"; },
      quickly: function (wait) { return "您发送消息太快了，您的消息将在 " + wait + "后发送。"; },
      notConnected: "尚未连接，请稍后再试。",
      fileTooLarge: function (mb) { return "文件太大（最大 " + mb + " MB）。"; },
      filesQuickly: function (wait) { return "您发送文件太快了，您的文件将在 " + wait + "后发送。"; },
      fileNotSent: "文件未能发送：",
      fileOffline: "文件未能发送，请检查网络连接。",
      reasons: [
        [/^message text longer than (\d+) characters/, function (m) {
          return "消息超过 " + m[1] + " 个字，请缩短后再试。";
        }],
        [/^file larger than (\d+) bytes/, function (m) {
          return TEXTS.zh.fileTooLarge(Math.floor(Number(m[1]) / 1048576));
        }],
        [/^empty file/, function () { return "文件是空的。"; }],
        [/^this chat has sent /, function () { return "此对话今天发送的文件已达上限，请稍后再试。"; }],
        [/^too many /, function () { return "发送太频繁，请稍后再试。"; }],
        [/^session /, function () { return "会话已过期，请重试。"; }]
      ],
      otherReason: "请刷新页面后再试。"
    }
  };
  var t = TEXTS[pageLanguage()];
  var HAN = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[\ud840-\ud87f][\udc00-\udfff]/;
  var KANA = /[\u3040-\u30ff]/;

  var base = root.dataset.base;
  var maxAttachmentBytes = Number(root.dataset.maxAttachmentBytes);
  var maxFrameBytes = Number(root.dataset.maxFrameBytes);
  var attachmentTypes = root.dataset.attachmentTypes;
  fileInput.accept = attachmentTypes;

  var SESSION_KEY = "webchat.session";
  var PENDING_KEY = "webchat.pending";
  var URL_PATTERN = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]])|\[([^\]\n]{1,200})\]\((https?:\/\/[^\s)]+)\)/g;

  var socket = null;
  var ready = false; // the server accepted our hello
  var retryDelay = 500;
  var reconnectAfter = 0; // ms the server asked us to wait before connecting again
  var holdUntil = 0; // no message is sent before this time (ms), as the server asked
  var resumeTimer = null;
  var MAX_UPLOAD_WAIT_SECONDS = 120; // a longer Retry-After (a daily quota) is a failure
  var shown = {}; // ids of customer messages already on the page
  var TYPING_TIMEOUT_MS = 60000; // a turn that says nothing for this long is over
  var typingTimer = null;
  var typing = typingIndicator();

  // ------------------------------------------------------------ language
  function pageLanguage() {
    var wanted = navigator.languages && navigator.languages.length
      ? navigator.languages : [navigator.language || "en"];
    for (var i = 0; i < wanted.length; i += 1) {
      var tag = String(wanted[i]).toLowerCase();
      if (tag === "zh" || tag.indexOf("zh-") === 0) return "zh";
      if (tag === "en" || tag.indexOf("en-") === 0) return "en";
    }
    return "en";
  }

  // The server's reason for a refusal, as the page's language says it.
  function reasonText(reason) {
    var text = String(reason || "");
    if (!t.reasons) return text;
    for (var i = 0; i < t.reasons.length; i += 1) {
      var match = t.reasons[i][0].exec(text);
      if (match) return t.reasons[i][1](match);
    }
    return t.otherReason;
  }

  function translatePage() {
    document.documentElement.lang = t.lang;
    log.setAttribute("aria-label", t.conversation);
    statusLine.textContent = t.connecting;
    attach.setAttribute("aria-label", t.attach);
    attach.title = t.attach;
    document.querySelector('label[for="webchat-input"]').textContent = t.yourMessage;
    input.placeholder = t.placeholder;
    document.getElementById("webchat-send").textContent = t.send;
  }

  // ------------------------------------------------------------ storage
  function load(key, fallback) {
    try {
      var value = JSON.parse(window.localStorage.getItem(key));
      return value === null ? fallback : value;
    } catch (error) {
      return fallback;
    }
  }
  function save(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch (error) {
      /* private mode: the chat still works, it just forgets on reload */
    }
  }
  function pending() {
    return load(PENDING_KEY, []);
  }
  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // ------------------------------------------------------------ rendering
  function bubble(from, label) {
    var item = document.createElement("div");
    item.className = "webchat-message webchat-" + from;
    var who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = label;
    item.appendChild(who);
    log.appendChild(item);
    if (typing.isConnected) log.appendChild(typing); // the indicator stays last
    return item;
  }

  // ------------------------------------------------------------ typing indicator
  function typingIndicator() {
    var item = document.createElement("div");
    item.id = "webchat-typing";
    item.className = "webchat-typing";
    var words = document.createElement("span");
    words.className = "visually-hidden";
    words.textContent = t.typing;
    item.appendChild(words);
    for (var i = 0; i < 3; i += 1) {
      var dot = document.createElement("span");
      dot.className = "webchat-typing-dot";
      dot.setAttribute("aria-hidden", "true");
      item.appendChild(dot);
    }
    return item;
  }

  function showTyping() {
    log.appendChild(typing);
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(hideTyping, TYPING_TIMEOUT_MS);
    scrollDown();
  }

  function hideTyping() {
    window.clearTimeout(typingTimer);
    typingTimer = null;
    typing.remove();
  }

  function appendText(parent, text) {
    // Plain text with URLs and [title](url) links made clickable; no markup parsed.
    var paragraph = document.createElement("p");
    if (HAN.test(text) && !KANA.test(text)) paragraph.lang = "zh-Hans";
    var last = 0;
    text.replace(URL_PATTERN, function (match, bare, title, url, offset) {
      paragraph.appendChild(document.createTextNode(text.slice(last, offset)));
      paragraph.appendChild(link(url || bare, title || bare));
      last = offset + match.length;
      return match;
    });
    paragraph.appendChild(document.createTextNode(text.slice(last)));
    parent.appendChild(paragraph);
  }

  function safeUrl(url) {
    return typeof url === "string" && (/^https?:\/\//i.test(url) || /^\/(?!\/)/.test(url)) ? url : null;
  }

  function link(url, title) {
    var anchor = document.createElement("a");
    anchor.href = safeUrl(url) || "#";
    anchor.textContent = title;
    anchor.target = "_blank";
    anchor.rel = "noopener noreferrer nofollow";
    return anchor;
  }

  function showUser(id, text, state) {
    if (id && shown[id]) return shown[id];
    var item = bubble("user", t.youSaid);
    appendText(item, text);
    if (state) item.dataset.state = state;
    if (id) shown[id] = item;
    scrollDown();
    return item;
  }

  function showBot(message, answered) {
    var item = bubble("bot", t.assistant);
    if (typeof message.text === "string" && message.text) appendText(item, message.text);
    if (safeUrl(message.image)) {
      var image = document.createElement("img");
      image.src = message.image;
      image.alt = t.image;
      image.loading = "lazy";
      item.appendChild(image);
    }
    if (safeUrl(message.link)) {
      var paragraph = document.createElement("p");
      paragraph.appendChild(link(message.link, message.link));
      item.appendChild(paragraph);
    }
    if (Array.isArray(message.buttons) && message.buttons.length) {
      item.appendChild(buttonGroup(message.buttons, answered));
    }
    if (message.custom !== undefined) {
      root.dispatchEvent(new CustomEvent("webchat:custom", { detail: message.custom }));
      if (item.childNodes.length === 1) item.remove();
    }
    scrollDown();
  }

  function buttonGroup(buttons, answered) {
    var group = document.createElement("div");
    group.className = "webchat-buttons";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", t.choices);
    buttons.forEach(function (choice) {
      if (choice.url) {
        var anchor = link(choice.url, choice.title);
        anchor.className = "webchat-button";
        group.appendChild(anchor);
        return;
      }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "webchat-button";
      button.textContent = choice.title;
      button.disabled = Boolean(answered);
      button.addEventListener("click", function () {
        Array.prototype.forEach.call(group.querySelectorAll("button"), function (b) {
          b.disabled = true;
        });
        button.setAttribute("aria-pressed", "true");
        // A suggested question is the customer's words; a bot's button sends its payload.
        if (typeof choice.text === "string") send(choice.text);
        else send(choice.payload, choice.title);
      });
      group.appendChild(button);
    });
    return group;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function showGreeting(greeting) {
    // First in the log, above messages still waiting to be sent.
    var item = bubble("bot", t.assistant);
    item.classList.add("webchat-greeting");
    if (typeof greeting.text === "string") appendText(item, greeting.text);
    var suggestions = Array.isArray(greeting.suggestions) ? greeting.suggestions : [];
    var choices = suggestions.filter(function (question) {
      return typeof question === "string" && question;
    }).map(function (question) {
      return { title: question, text: question };
    });
    if (choices.length) {
      var group = buttonGroup(choices, pending().length > 0);
      group.setAttribute("aria-label", t.suggestions);
      item.appendChild(group);
    }
    log.insertBefore(item, log.firstChild);
  }

  function showHistory(messages) {
    log.setAttribute("aria-busy", "true");
    log.textContent = "";
    shown = {};
    messages.forEach(function (entry, index) {
      if (entry.from === "user") {
        showUser(entry.id || null, entry.text);
      } else {
        // Buttons that were already answered stay visible but cannot be pressed again.
        var answered = messages.slice(index + 1).some(function (later) {
          return later.from === "user";
        });
        showBot(entry, answered);
      }
    });
    pending().forEach(function (message) {
      showUser(message.id, message.display || message.text, "sending");
    });
    log.setAttribute("aria-busy", "false");
  }

  // ------------------------------------------------------------ connection
  function connect() {
    var url = new URL(base + "webhook", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url.href);
    socket.onopen = function () {
      var session = load(SESSION_KEY, null);
      socket.send(JSON.stringify(
        session ? { type: "hello", session_id: session.id, token: session.token } : { type: "hello" }
      ));
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      receive(frame);
    };
    socket.onclose = function (event) {
      ready = false;
      hideTyping(); // no word of the turn's end can come on a closed connection
      if (event.code === 4401) {
        // The server no longer knows this session (new secret, expired): start afresh.
        try {
          window.localStorage.removeItem(SESSION_KEY);
        } catch (error) {
          /* nothing stored */
        }
      }
      if (reconnectAfter) {
        // Too many chats or requests from this network: come back when told.
        window.setTimeout(connect, reconnectAfter);
        reconnectAfter = 0;
        return;
      }
      setStatus(t.reconnecting);
      window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  function receive(frame) {
    switch (frame.type) {
      case "session":
        save(SESSION_KEY, { id: frame.session_id, token: frame.token });
        break;
      case "history":
        hideTyping(); // the server says again if a reply is being written
        showHistory(frame.messages || []);
        if (frame.greeting) showGreeting(frame.greeting);
        ready = true;
        retryDelay = 500;
        if (!resumeTimer) setStatus(t.connected);
        pending().forEach(transmit); // sent before a reload or a lost connection
        break;
      case "ack":
        save(PENDING_KEY, pending().filter(function (m) { return m.id !== frame.id; }));
        if (shown[frame.id]) delete shown[frame.id].dataset.state;
        break;
      case "user":
        showUser(frame.id, frame.text); // from another tab of this session
        break;
      case "bot":
        showBot(frame.message || {}, false);
        if (typing.isConnected) showTyping(); // the turn goes on: the timeout starts again
        break;
      case "typing":
        if (frame.active === true) showTyping();
        else hideTyping();
        break;
      case "error":
        if (frame.code === "rate_limited") {
          slowDown(frame.retry_after, Boolean(frame.id));
          break;
        }
        setStatus(t.notSent + reasonText(frame.reason));
        if (frame.id) {
          hideTyping();
          save(PENDING_KEY, pending().filter(function (m) { return m.id !== frame.id; }));
          if (shown[frame.id]) shown[frame.id].dataset.state = "failed";
        }
        break;
    }
  }

  function transmit(message) {
    if (!ready || Date.now() < holdUntil) return;
    var frame = { type: "message", id: message.id, text: message.text };
    if (message.display) frame.display = message.display;
    var data = JSON.stringify(frame);
    if (new TextEncoder().encode(data).length > maxFrameBytes) {
      // The server would close the connection on it, again after every reconnection.
      save(PENDING_KEY, pending().filter(function (m) { return m.id !== message.id; }));
      if (shown[message.id]) shown[message.id].dataset.state = "failed";
      setStatus(t.tooLong);
      return;
    }
    socket.send(data);
  }

  function inSeconds(seconds) {
    var count = Math.max(1, Math.round(Number(seconds) || 1));
    return t.seconds(count);
  }

  function slowDown(seconds, aboutAMessage) {
    var wait = Math.max(1, Number(seconds) || 1) * 1000;
    if (!aboutAMessage) {
      // Said before the server closes the connection (too many chats from this network).
      reconnectAfter = wait;
      setStatus(t.busy(inSeconds(seconds)));
      return;
    }
    // The message was not taken and is still queued: send it (and any typed meanwhile)
    // once the wait is over.
    holdUntil = Math.max(holdUntil, Date.now() + wait);
    setStatus(t.quickly(inSeconds(seconds)));
    window.clearTimeout(resumeTimer);
    resumeTimer = window.setTimeout(resume, holdUntil - Date.now());
  }

  function resume() {
    resumeTimer = null;
    holdUntil = 0;
    if (!ready) return; // the next hello's history sends them
    setStatus(t.connected);
    pending().forEach(transmit);
  }

  function send(text, display) {
    var message = { id: newId(), text: text, display: display || undefined };
    save(PENDING_KEY, pending().concat([message]));
    showUser(message.id, display || text, "sending");
    transmit(message);
  }

  // ------------------------------------------------------------ attachments
  function upload(file) {
    var session = load(SESSION_KEY, null);
    if (!session) {
      setStatus(t.notConnected);
      return;
    }
    if (file.size > maxAttachmentBytes) {
      setStatus(t.fileTooLarge(Math.floor(maxAttachmentBytes / 1048576)));
      return;
    }
    var id = newId();
    var item = showUser(id, "\uD83D\uDCCE " + file.name, "sending");
    sendFile(file, id, item, 0);
  }

  function sendFile(file, id, item, attempt) {
    var session = load(SESSION_KEY, null);
    fetch(base + "upload", {
      method: "POST",
      body: file,
      headers: {
        "Content-Type": file.type || "application/octet-stream",
        "X-Webchat-Session": session.id,
        "X-Webchat-Token": session.token,
        "X-Webchat-Message-Id": id,
        "X-Webchat-File-Name": encodeURIComponent(file.name)
      }
    }).then(function (response) {
      if (response.ok) {
        delete item.dataset.state;
        if (attempt && ready) setStatus(t.connected);
        return;
      }
      var wait = Number(response.headers.get("Retry-After"));
      if (response.status === 429 && wait > 0 && wait <= MAX_UPLOAD_WAIT_SECONDS && attempt < 5) {
        setStatus(t.filesQuickly(inSeconds(wait)));
        window.setTimeout(function () {
          sendFile(file, id, item, attempt + 1);
        }, wait * 1000);
        return;
      }
      item.dataset.state = "failed";
      return response.json().then(function (body) {
        setStatus(t.fileNotSent + reasonText(body.error || response.status));
      });
    }).catch(function () {
      item.dataset.state = "failed";
      setStatus(t.fileOffline);
    });
  }

  // ------------------------------------------------------------ wiring
  // An input method (pinyin, wubi, …) composes a word in the input; the Enter that
  // confirms it arrives as keydown with isComposing (Chrome, Firefox) or, in Safari,
  // just after compositionend with keyCode 229. Neither sends the message.
  var composing = false;
  input.addEventListener("compositionstart", function () {
    composing = true;
  });
  input.addEventListener("compositionend", function () {
    composing = false;
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.isComposing || composing || event.keyCode === 229)) {
      event.preventDefault(); // no implicit submission of the form
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (composing) return;
    var text = input.value.trim();
    if (!text) return;
    send(text);
    input.value = "";
    input.focus();
  });
  attach.addEventListener("click", function () {
    fileInput.click();
  });
  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files[0]) upload(fileInput.files[0]);
    fileInput.value = "";
  });

  translatePage();
  connect();
})();
