// irc_client.js PORT NICK [SASL_USER SASL_PASSWORD]: the npm irc-framework
// client on axon's IRC gateway, driven by test_irc_node.py.  Each stdin line
// is a JSON command ({"join": "#lobby"}, {"say": TARGET, "text": T},
// {"action": TARGET, "text": T}, {"tagmsg": TARGET, "tags": {...}},
// {"monitor": NICK}, {"quit": T}; "say" may carry "tags" too); each event
// the client sees is a JSON line on stdout ({"ev": "registered"|"join"|
// "part"|"message"|"action"|"tagmsg"|"online"|"offline"|"userlist"|
// "error", ...}).
'use strict';
const IRC = require('irc-framework');
const readline = require('readline');

const [port, nick, saslUser, saslPass] = process.argv.slice(2);
const client = new IRC.Client();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const opts = { host: '127.0.0.1', port: Number(port), nick, username: nick, gecos: nick,
  auto_reconnect: false, enable_chghost: true, enable_echomessage: false };
if (saslUser) opts.account = { account: saslUser, password: saslPass };
client.connect(opts);

client.on('registered', (e) => out({ ev: 'registered', nick: e.nick,
  caps: client.network.cap.enabled, network: client.network.name,
  casemapping: client.network.options.CASEMAPPING || null }));
client.on('loggedin', (e) => out({ ev: 'loggedin', account: e.account }));
client.on('join', (e) => out({ ev: 'join', nick: e.nick, channel: e.channel }));
client.on('part', (e) => out({ ev: 'part', nick: e.nick, channel: e.channel }));
client.on('userlist', (e) => out({ ev: 'userlist', channel: e.channel, users: e.users.map((u) => u.nick) }));
client.on('privmsg', (e) => out({ ev: 'message', nick: e.nick, ident: e.ident, host: e.hostname,
  target: e.target, message: e.message, time: e.time || null, tags: e.tags || {} }));
client.on('tagmsg', (e) => out({ ev: 'tagmsg', nick: e.nick, target: e.target, tags: e.tags || {} }));
client.on('users online', (e) => out({ ev: 'online', nicks: e.nicks }));
client.on('users offline', (e) => out({ ev: 'offline', nicks: e.nicks }));
client.on('action', (e) => out({ ev: 'action', nick: e.nick, target: e.target, message: e.message }));
client.on('irc error', (e) => out({ ev: 'error', error: e.error, reason: e.reason || '' }));
client.on('close', () => { out({ ev: 'close' }); process.exit(0); });

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const c = JSON.parse(line);
  if (c.join) client.join(c.join);
  else if (c.say) client.say(c.say, c.text, c.tags);
  else if (c.tagmsg) client.tagmsg(c.tagmsg, c.tags);
  else if (c.monitor) client.addMonitor(c.monitor);
  else if (c.action) client.action(c.action, c.text);
  else if ('quit' in c) client.quit(c.quit);
});
