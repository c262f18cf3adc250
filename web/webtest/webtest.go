// Package webtest starts headless Chromium browsers for the tests of the
// devices page: Debian's /usr/bin/chromium driven through chromedp.
//
// Each Browser has its own fresh profile (user-data-dir), so its cookies are
// its own: two Browsers are two devices of one user.
package webtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// InstallHint says how to get the browser the tests need.
const InstallHint = "apt-get update && apt-get install -y --no-install-recommends chromium"

// Browser is one running Chromium with one tab.
type Browser struct {
	// Ctx runs actions in the browser's tab: chromedp.Run(b.Ctx, ...).
	Ctx context.Context

	t        testing.TB
	mu       sync.Mutex
	problems []string
}

// Options are extra allocator options, such as chromedp.UserAgent or
// chromedp.Flag("host-resolver-rules", ...).
type Options = chromedp.ExecAllocatorOption

// New starts a browser with a fresh profile and returns it; it exits when the
// test ends. A missing /usr/bin/chromium fails the test with the install hint:
// the browser tests are never skipped.
func New(t testing.TB, opts ...Options) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browser tests need Debian's Chromium at %s: %v; install it with: %s", ChromiumPath, err, InstallHint)
	}
	all := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	all = append(all, opts...)
	// A safety net: a wedged browser ends the test instead of hanging it.
	parent, cancelParent := context.WithTimeout(context.Background(), 2*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, all...)
	b := &Browser{t: t}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		cancelParent()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelParent()
	})
	b.Ctx = ctx
	return b
}

// listen records what a test should not see: uncaught exceptions, console
// errors and browser log errors (Content-Security-Policy violations land
// there).
func (b *Browser) listen(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		p = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			p += " " + d.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		p = "console.error: " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		p = fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

// Problems returns the exceptions and errors the page logged so far and
// forgets them. Tests that expect failed requests (a 401 after a sign-out)
// filter with Filter.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// CheckNoProblems fails the test if the page logged an exception, a console
// error or a security error, except for lines containing one of allowed.
func (b *Browser) CheckNoProblems(allowed ...string) {
	b.t.Helper()
next:
	for _, p := range b.Problems() {
		for _, a := range allowed {
			if strings.Contains(p, a) {
				continue next
			}
		}
		b.t.Errorf("browser: %s", p)
	}
}

// Do runs actions in the tab and fails the test on error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// DoWithin is Do with a deadline, for the waits a test bounds (a revoked
// device returning to the sign-in form within 2 seconds). It returns the
// error rather than failing, so the test can say what it waited for.
func (b *Browser) DoWithin(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.Ctx, d)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Eval evaluates a JavaScript expression in the page, waits for it when it
// is a promise, and decodes its value into a T; it fails the test on error.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// WaitView waits until the page shows view: "signin", "signup" or
// "devices" (the page names it in body's data-view attribute).
func WaitView(view string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body[data-view="` + view + `"] #view-` + view))
}

// WaitSessions waits until the devices list shows n sessions.
func WaitSessions(n int) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`body[data-view="devices"][data-sessions="%d"] #devices`, n)))
}

// WaitLive waits until the page's event stream is open.
func WaitLive() chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"] #live`))
}

// SignIn fills and submits the sign-in form of a page showing it, as a
// user would (a click on the button, which runs the page's submit
// handler), and waits for the devices list.
func SignIn(username, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		WaitView("signin"),
		chromedp.SetValue(chromedp.CSS("#signin-username"), username),
		chromedp.SetValue(chromedp.CSS("#signin-password"), password),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		WaitView("devices"),
	)
}

// Device is a session as the page shows it.
type Device struct {
	ID, Title, Kind, Icon, IP, Location, LoginTime, LastActive, LastActiveTitle string
	Current                                                                     bool
}

// Devices reads the devices list as rendered.
func Devices(b *Browser) []Device {
	b.t.Helper()
	return Eval[[]Device](b, `Array.from(document.querySelectorAll('#devices > li')).map((li) => ({
		ID: li.dataset.id,
		Title: li.querySelector('.device-name').textContent,
		Kind: li.querySelector('.device-kind').textContent,
		Icon: li.querySelector('.device-icon use').getAttribute('href'),
		IP: li.querySelector('.device-ip').textContent,
		Location: li.querySelector('.device-location').textContent,
		LoginTime: li.querySelector('.device-login').textContent,
		LastActive: li.querySelector('.device-active').textContent,
		LastActiveTitle: li.querySelector('.device-active').title,
		Current: !li.querySelector('.badge').hidden,
	}))`)
}

// Cookies returns the cookies the browser holds for url, by name, HttpOnly
// ones included (read through the DevTools protocol, not the page).
func Cookies(b *Browser, url string) map[string]*network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.Ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		b.t.Fatalf("browser: get cookies: %v", err)
	}
	m := make(map[string]*network.Cookie, len(res.Cookies))
	for _, c := range res.Cookies {
		m[c.Name] = c
	}
	return m
}

// SetHeaders adds headers to every request of the tab from now on, such as
// an X-Forwarded-For that a trusting server reads as the client address.
func SetHeaders(b *Browser, h map[string]string) {
	b.t.Helper()
	hs := network.Headers{}
	for k, v := range h {
		hs[k] = v
	}
	if _, err := chromedp.Call(b.Ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hs}); err != nil {
		b.t.Fatalf("browser: set headers: %v", err)
	}
}
