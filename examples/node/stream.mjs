// stream.mjs: call a wasmd plug-in export as a stream and print each chunk as it arrives.
//
//   npm install            # @msgpack/msgpack, once
//   node stream.mjs SOCKET PLUGIN.EXPORT [ARG...]    # each ARG JSON, else a string
//
// Chunks are msgpack-rpc notifications [2, "wasmd.chunk", [msgid, seq, value]]; the stream
// ends with the ordinary response [1, msgid, error, result]. The daemon sends at most
// `window` chunks ahead of the credit we grant, so we grant half a window each time we have
// printed that many. Ctrl-C sends wasmd.cancel: the call ends with error 11.
// (docs/streaming.md shows this file from its first import on.)
import net from "node:net";
import { Encoder, decodeMultiStream } from "@msgpack/msgpack";

const [socketPath, method, ...args] = process.argv.slice(2);
const params = args.map((arg) => {
  try {
    return JSON.parse(arg); // 42, [1, 2], "x" ...; anything else is a string
  } catch {
    return arg;
  }
});
const window = 32;
const msgid = 1;
const encoder = new Encoder();
const connection = net.createConnection(socketPath);
const send = (message) => connection.write(encoder.encode(message));

send([0, msgid, "wasmd.stream", [method, params, { window }]]);
process.on("SIGINT", () => send([2, "wasmd.cancel", [msgid]]));

let taken = 0;
for await (const [type, second, third, fourth] of decodeMultiStream(connection)) {
  if (type === 2 && second === "wasmd.chunk" && third[0] === msgid) {
    console.log(JSON.stringify(third[2]));
    if (++taken % (window / 2) === 0) send([2, "wasmd.credit", [msgid, window / 2]]);
  } else if (type === 1 && second === msgid) {
    if (third === null) {
      console.log(`result ${JSON.stringify(fourth)}`);
    } else {
      console.error(`error ${third[0]}: ${third[1]}`);
      process.exitCode = 1;
    }
    connection.end();
    break;
  }
}
