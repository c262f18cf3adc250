// A small client of sessiond's admin API, for an app's backend that signs
// its users in itself, written against the types openapi-typescript
// generates from docs/openapi-admin.yaml (into gen/openapi-admin.ts): it
// starts a session with the app's claims, lists the user's sessions,
// introspects the access token, ends every session of the user after a
// password change, and starts a session for a browser with a handoff URL.
// The Go test in this directory type-checks it with tsc --noEmit; it is not
// run. The @ts-expect-error lines must fail to type-check: were the
// generated types loose (any), tsc would report those lines as unused and
// the check would fail.
import type { components, paths } from "./gen/openapi-admin.js";

type Schemas = components["schemas"];
type OtherSession = Schemas["OtherSession"];
type Introspection = Schemas["Introspection"];
type ErrorResponse = Schemas["ErrorResponse"];

type Start = paths["/admin/v1/sessions"]["post"];
type StartRequest = Start["requestBody"]["content"]["application/json"];
type StartOK = Start["responses"][201]["content"]["application/json"];
type Grant = Schemas["Grant"];
type Handoff = Schemas["Handoff"];
type UserSessions = paths["/admin/v1/users/{user_id}/sessions"];
type ListQuery = NonNullable<UserSessions["get"]["parameters"]["query"]>;
type ListOK = UserSessions["get"]["responses"][200]["content"]["application/json"];
type RevokeAllRequest = NonNullable<UserSessions["delete"]["requestBody"]>["content"]["application/json"];
type RevokeAllOK = UserSessions["delete"]["responses"][200]["content"]["application/json"];
type Introspect = paths["/admin/v1/introspect"]["post"];
type IntrospectRequest = Introspect["requestBody"]["content"]["application/json"];
type IntrospectOK = Introspect["responses"][200]["content"]["application/json"];

/** An error answer of the admin API, with its stable code to branch on. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: Schemas["ErrorData"]["code"],
    message: string,
  ) {
    super(message);
  }
}

/** The admin listener's address and an admin key (`sdk_...`). */
export interface Admin {
  base: string;
  key: string;
}

/** Sends one request with the admin key and returns the parsed JSON of a 2xx answer. */
async function send(admin: Admin, method: "GET" | "POST" | "DELETE", path: string, body?: object): Promise<unknown> {
  const headers: Record<string, string> = { Authorization: `Bearer ${admin.key}` };
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(new URL(path, admin.base), init);
  const json: unknown = await res.json();
  if (!res.ok) {
    // Every error, the introspection's included, is in the envelope.
    const envelope = json as ErrorResponse;
    throw new AdminError(envelope.status_code, envelope.data.code, envelope.message);
  }
  return json;
}

/** Sends one request whose 2xx answer is in the envelope, and returns that envelope. */
async function call<T extends { status: "success" }>(
  admin: Admin,
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: object,
): Promise<T> {
  return (await send(admin, method, path, body)) as T;
}

/**
 * A user id as one path segment: percent-encoded, with `.` and `..` spelled
 * `%2E` and `%2E%2E` so that the path is not cleaned.
 */
function segment(userID: string): string {
  if (userID === "." || userID === "..") return userID.replaceAll(".", "%2E");
  return encodeURIComponent(userID);
}

/** Starts a session for a user the app signed in, with the app's claims, and returns its tokens. */
export async function startSession(admin: Admin, userID: string, claims: Schemas["Claims"]): Promise<Grant> {
  const req: StartRequest = {
    user_id: userID,
    device_id: "backend-example",
    user_agent: "ExampleApp/1.0",
    ip_address: "203.0.113.7",
    claims,
  };
  const started = await call<StartOK>(admin, "POST", "/admin/v1/sessions", req);
  if (!("access_token" in started.data)) throw new Error("a start without handoff answered a handoff");
  const grant: Grant = started.data;
  // The session of a start is the tokens' own: its type says current is true.
  const current: true = grant.session.current;
  console.log(`started ${grant.session.id} (current: ${current}) with claims`, grant.session.claims);
  return grant;
}

/** Starts a session for the user's browser and returns the one-time URL to redirect it to. */
export async function startHandoff(admin: Admin, userID: string, returnTo: string): Promise<string> {
  const req: StartRequest = { user_id: userID, handoff: true };
  const started = await call<StartOK>(admin, "POST", "/admin/v1/sessions", req);
  if (!("handoff_url" in started.data)) throw new Error("a start with handoff answered tokens");
  const handoff: Handoff = started.data;
  console.log(`handoff for ${handoff.session.id} works for ${handoff.expires_in} s`);
  return `${handoff.handoff_url}&return_to=${encodeURIComponent(returnTo)}`;
}

/** Returns the first page of the user's sessions, the most recently active first. */
export async function listUserSessions(admin: Admin, userID: string, limit: ListQuery["limit"] = 100): Promise<OtherSession[]> {
  const list = await call<ListOK>(admin, "GET", `/admin/v1/users/${segment(userID)}/sessions?limit=${limit}`);
  // data is a plain array of sessions, none of them current.
  return list.data;
}

/** Introspects an access token (RFC 7662, not the envelope). */
export async function introspect(admin: Admin, token: string): Promise<Introspection> {
  const req: IntrospectRequest = { token };
  return (await send(admin, "POST", "/admin/v1/introspect", req)) as IntrospectOK;
}

/** Ends every session of the user, for reason (default admin); returns how many ended. */
export async function endAll(admin: Admin, userID: string, reason?: RevokeAllRequest["reason"]): Promise<number> {
  // reason may be left out: the server takes admin.
  const req: RevokeAllRequest = reason === undefined ? {} : { reason };
  const ended = await call<RevokeAllOK>(admin, "DELETE", `/admin/v1/users/${segment(userID)}/sessions`, req);
  return ended.data.revoked;
}

/** Starts a session, lists, introspects, ends them all, and hands a new one to a browser. */
export async function main(admin: Admin, userID: string): Promise<string> {
  const grant = await startSession(admin, userID, { plan: "pro", org: "acme" });
  for (const s of await listUserSessions(admin, userID)) {
    const current: false = s.current;
    console.log(`${s.id} ${s.device_class} ${s.name || s.device} from ${s.location || s.ip_address} (current: ${current})`, s.claims);
  }
  const info = await introspect(admin, grant.access_token);
  if (info.active) {
    // The session's claims are beside the token's own.
    console.log(`token of ${info.sub} in session ${info.sid}, expires at ${info.exp}, plan`, info["plan"]);
  } else {
    console.log("token is not active");
  }
  try {
    console.log(`ended ${await endAll(admin, userID, "password_changed")} sessions`);
  } catch (err) {
    if (err instanceof AdminError && err.code === "not_found") return "";
    throw err;
  }
  return startHandoff(admin, userID, "https://app.example.com/welcome");
}

// Each line below must fail to type-check; see the comment at the top.

// @ts-expect-error: a listed session is never the request's own.
export const listedCurrent = (s: OtherSession): true => s.current;

// @ts-expect-error: a session has no user_agent field (the User-Agent is not kept).
export const userAgent = (s: OtherSession): string => s.user_agent;

// @ts-expect-error: handoff is a boolean.
export const wrongHandoff: StartRequest = { user_id: "u1", handoff: "yes" };

// @ts-expect-error: logout is not a reason the app gives.
export const wrongReason: RevokeAllRequest = { reason: "logout" };

// @ts-expect-error: an inactive token's answer is {"active": false} and nothing else.
export const inactiveSub = (i: Introspection): string => (i.active ? i.sub : i.sub);

// @ts-expect-error: revoked is a number.
export const revokedText = (r: RevokeAllOK): string => r.data.revoked;

// @ts-expect-error: invalid_token is the public API's code; the admin API answers admin_key_invalid.
export const publicCode: Schemas["ErrorData"]["code"] = "invalid_token";

// @ts-expect-error: a start's answer holds a grant or a handoff, never both.
export const bothAtOnce = (r: StartOK): string => r.data.handoff_url + r.data.access_token;
