// ws_server.js PORT DEFLATE(0|1): Node's `ws` echo server for axon's
// client tests.  Echoes every message with its type; prints "listening".
'use strict';
const WebSocket = require('ws');

const [port, deflate] = process.argv.slice(2);
const wss = new WebSocket.WebSocketServer({
  host: '127.0.0.1',
  port: Number(port),
  perMessageDeflate: deflate === '1' ? { threshold: 0 } : false,
  maxPayload: 64 << 20,
});
wss.on('connection', (ws, req) => {
  const ext = req.headers['sec-websocket-extensions'] || '';
  ws.send(`hello ext=${ws.extensions ? 'permessage-deflate' : 'none'} offered=${ext.includes('permessage-deflate')}`);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log('listening'));
