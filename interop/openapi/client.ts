// A small sessiond client written against the types openapi-typescript
// generates from docs/openapi.yaml (into gen/openapi.ts): it signs in, lists
// the sessions, renames one and revokes one. The Go test in this directory
// type-checks it with tsc --noEmit; it is not run. The @ts-expect-error
// lines must fail to type-check: were the generated types loose (any), tsc
// would report those lines as unused and the check would fail.
import type { components, paths } from "./gen/openapi.js";

type Schemas = components["schemas"];
type Session = Schemas["Session"];
type ErrorResponse = Schemas["ErrorResponse"];

type LoginRequest = paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"];
type LoginOK = paths["/api/v1/auth/login"]["post"]["responses"][200]["content"]["application/json"];
type ListQuery = NonNullable<paths["/api/v1/sessions"]["get"]["parameters"]["query"]>;
type ListOK = paths["/api/v1/sessions"]["get"]["responses"][200]["content"]["application/json"];
type RenameRequest = paths["/api/v1/sessions/{id}"]["patch"]["requestBody"]["content"]["application/json"];
type RenameOK = paths["/api/v1/sessions/{id}"]["patch"]["responses"][200]["content"]["application/json"];
type RevokeOK = paths["/api/v1/sessions/{id}"]["delete"]["responses"][200]["content"]["application/json"];
type RevokeNotFound = paths["/api/v1/sessions/{id}"]["delete"]["responses"][404]["content"]["application/json"];

/** An error answer of the API, with its stable code to branch on. */
export class APIError extends Error {
  constructor(
    readonly status: number,
    readonly code: Schemas["ErrorData"]["code"],
    message: string,
  ) {
    super(message);
  }
}

/** Sends one request and returns the envelope of a 2xx answer. */
async function call<T extends { status: "success" }>(
  base: string,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  token?: string,
  body?: object,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers["Authorization"] = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(new URL(path, base), init);
  const envelope = (await res.json()) as T | ErrorResponse;
  if (envelope.status === "error") {
    throw new APIError(envelope.status_code, envelope.data.code, envelope.message);
  }
  return envelope;
}

/** Signs in and returns the access token and the new session. */
export async function login(base: string, username: string, password: string): Promise<[string, Session]> {
  const req: LoginRequest = { username, password, device_id: "example-client", device_name: "Example client" };
  const grant = await call<LoginOK>(base, "POST", "/api/v1/auth/login", undefined, req);
  const { access_token, session } = grant.data;
  if (access_token === undefined) throw new Error("no access token: this client does not ask for cookies");
  // The session of a grant is the current one: its type says current is true.
  const current: true = session.current;
  console.log(`signed in on ${session.device} (current: ${current}), token expires in ${grant.data.expires_in} s`);
  return [access_token, session];
}

/** Returns the first page of the user's sessions, current first. */
export async function listSessions(base: string, token: string, limit: ListQuery["limit"] = 100): Promise<Session[]> {
  const list = await call<ListOK>(base, "GET", `/api/v1/sessions?limit=${limit}`, token);
  // data is a plain array of sessions.
  return list.data;
}

/** Names a session and returns it. */
export async function renameSession(base: string, token: string, id: string, name: string): Promise<Session> {
  const req: RenameRequest = { name };
  const renamed = await call<RenameOK>(base, "PATCH", `/api/v1/sessions/${encodeURIComponent(id)}`, token, req);
  return renamed.data;
}

/** Signs a device out; false when the session was already gone. */
export async function revokeSession(base: string, token: string, id: string): Promise<boolean> {
  try {
    const revoked = await call<RevokeOK>(base, "DELETE", `/api/v1/sessions/${encodeURIComponent(id)}`, token);
    const nothing: Record<string, never> = revoked.data;
    return Object.keys(nothing).length === 0;
  } catch (err) {
    const notFound: RevokeNotFound["data"]["code"] = "not_found";
    if (err instanceof APIError && err.code === notFound) return false;
    throw err;
  }
}

/** Signs in, lists the sessions, names the oldest other device and signs it out. */
export async function main(base: string, username: string, password: string): Promise<void> {
  const [token, mine] = await login(base, username, password);
  const sessions = await listSessions(base, token);
  for (const s of sessions) {
    const claims: Record<string, unknown> = s.claims;
    console.log(`${s.id} ${s.device_class} ${s.name || s.device} from ${s.location || s.ip_address}, last active ${s.last_active}`, claims);
  }
  const other = sessions.filter((s) => !s.current && s.id !== mine.id).at(-1);
  if (other === undefined) return;
  const renamed = await renameSession(base, token, other.id, "Old laptop");
  console.log(`renamed ${renamed.id} to ${renamed.name}`);
  console.log(`revoked: ${await revokeSession(base, token, renamed.id)}`);
}

// Each line below must fail to type-check; see the comment at the top.

// @ts-expect-error: a session has no user_agent field (the User-Agent is not kept).
export const userAgent = (s: Session): string => s.user_agent;

// @ts-expect-error: the session list is an array of sessions, not an object.
export const firstByKey = (l: ListOK): Session => l.data.session;

// @ts-expect-error: error codes are an enum; this one does not exist.
export const unknownCode: Schemas["ErrorData"]["code"] = "no_such_code";

// @ts-expect-error: a rename takes name, not device_name.
export const wrongRename: RenameRequest = { device_name: "x" };

// @ts-expect-error: limit is a number.
export const wrongLimit: ListQuery["limit"] = "10";

// A password change may leave revoke_other_sessions out (it defaults to
// true on the server).
export async function changePassword(base: string, token: string, current: string, next: string): Promise<number> {
  const body: paths["/api/v1/auth/password"]["post"]["requestBody"]["content"]["application/json"] = {
    current_password: current,
    new_password: next,
  };
  const res = await fetch(base + "/api/v1/auth/password", {
    method: "POST",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return res.status;
}
