// A webhook receiver that verifies every delivery with the Standard Webhooks
// reference library for JavaScript, as an app would, and records what it
// received. Tests start it through internal/webhooktest.
//
// Environment:
//   WEBHOOK_SECRET  the secret to verify with (whsec_...), required
//   RECEIVER_PORT   the port to listen on, on 127.0.0.1 (default 0: any free one)
//   RECEIVER_LOG    a file of JSON lines, one per delivery, read at start and
//                   appended to, so the record survives a restart
//   RECEIVER_FAIL   how many deliveries to answer 500 first (default 0)
//
// It prints the port it listens on as the first line of standard output and
// exits when standard input closes (when the test that started it ends).
//
//   POST /control {"fail": N}  the next N deliveries are answered 500
//   GET /deliveries            the record: [{id, attempt, verified, error,
//                              status, body, timestamp, content_type,
//                              user_agent, path}]
//   POST any other path        a delivery: 400 when it does not verify, else
//                              500 while failures are asked for, else 204
import { appendFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("receiver: WEBHOOK_SECRET is not set");
  process.exit(2);
}
const webhook = new Webhook(secret);
const logFile = process.env.RECEIVER_LOG || "";
let fail = Number.parseInt(process.env.RECEIVER_FAIL || "0", 10);

const deliveries = [];
if (logFile) {
  let text = "";
  try {
    text = readFileSync(logFile, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  for (const line of text.split("\n")) {
    if (line) deliveries.push(JSON.parse(line));
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function answer(res, status, json) {
  if (json === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
}

const server = createServer(async (req, res) => {
  try {
    const body = await readBody(req);
    if (req.method === "GET" && req.url === "/deliveries") {
      answer(res, 200, deliveries);
      return;
    }
    if (req.method === "POST" && req.url === "/control") {
      fail = JSON.parse(body.toString("utf8")).fail ?? 0;
      answer(res, 204);
      return;
    }
    if (req.method !== "POST") {
      answer(res, 405);
      return;
    }
    let verified = true;
    let error = "";
    try {
      webhook.verify(body, req.headers);
    } catch (err) {
      verified = false;
      error = String(err.message || err);
    }
    const id = req.headers["webhook-id"] || "";
    let status = 204;
    if (!verified) {
      status = 400;
    } else if (fail > 0) {
      fail--;
      status = 500;
    }
    const delivery = {
      id,
      attempt: deliveries.filter((d) => d.id === id).length + 1,
      verified,
      error,
      status,
      body: body.toString("utf8"),
      timestamp: req.headers["webhook-timestamp"] || "",
      content_type: req.headers["content-type"] || "",
      user_agent: req.headers["user-agent"] || "",
      path: req.url,
    };
    deliveries.push(delivery);
    // On disk before the answer: once the sender has its answer, the
    // record holds the delivery, even across a restart.
    if (logFile) appendFileSync(logFile, `${JSON.stringify(delivery)}\n`);
    answer(res, status, verified ? undefined : { error });
  } catch (err) {
    answer(res, 400, { error: String(err.message || err) });
  }
});

server.listen(Number.parseInt(process.env.RECEIVER_PORT || "0", 10), "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
