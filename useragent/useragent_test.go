package useragent_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/useragent"
)

var cases = []struct {
	name, ua      string
	device, class string
}{
	// Desktop browsers.
	{"chrome windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome on Windows", sessiond.ClassDesktop},
	{"chrome macos", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome on macOS", sessiond.ClassDesktop},
	{"chrome linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome on Linux", sessiond.ClassDesktop},
	{"chrome chromeos", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome on ChromeOS", sessiond.ClassDesktop},
	{"edge windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
		"Edge on Windows", sessiond.ClassDesktop},
	{"edge macos", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
		"Edge on macOS", sessiond.ClassDesktop},
	{"firefox windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Firefox on Windows", sessiond.ClassDesktop},
	{"firefox macos", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Firefox on macOS", sessiond.ClassDesktop},
	{"firefox linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Firefox on Linux", sessiond.ClassDesktop},
	{"firefox ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Firefox on Linux", sessiond.ClassDesktop},
	{"safari macos", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Safari on macOS", sessiond.ClassDesktop},
	// iPadOS 13+ asks for desktop sites with a Mac User-Agent.
	{"safari ipados desktop mode", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
		"Safari on macOS", sessiond.ClassDesktop},
	{"opera windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
		"Opera on Windows", sessiond.ClassDesktop},
	{"opera macos", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
		"Opera on macOS", sessiond.ClassDesktop},
	{"vivaldi linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.26",
		"Vivaldi on Linux", sessiond.ClassDesktop},
	{"yandex windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
		"Yandex Browser on Windows", sessiond.ClassDesktop},

	// Phones and tablets.
	{"chrome android phone", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Chrome on Android", sessiond.ClassMobile},
	{"chrome android tablet", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome on Android", sessiond.ClassTablet},
	{"android webview", "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36",
		"Chrome on Android", sessiond.ClassMobile},
	{"chrome iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
		"Chrome on iPhone", sessiond.ClassMobile},
	{"chrome ipad", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
		"Chrome on iPad", sessiond.ClassTablet},
	{"safari iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Safari on iPhone", sessiond.ClassMobile},
	{"safari ipad ios 12", "Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
		"Safari on iPad", sessiond.ClassTablet},
	{"edge android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.2903.87",
		"Edge on Android", sessiond.ClassMobile},
	{"edge iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.2903.92 Mobile/15E148 Safari/605.1.15",
		"Edge on iPhone", sessiond.ClassMobile},
	{"firefox android", "Mozilla/5.0 (Android 15; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
		"Firefox on Android", sessiond.ClassMobile},
	{"firefox android tablet", "Mozilla/5.0 (Android 15; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
		"Firefox on Android", sessiond.ClassTablet},
	{"firefox iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
		"Firefox on iPhone", sessiond.ClassMobile},
	{"opera android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0",
		"Opera on Android", sessiond.ClassMobile},
	{"samsung internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
		"Samsung Internet on Android", sessiond.ClassMobile},
	{"samsung internet tablet", "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
		"Samsung Internet on Android", sessiond.ClassTablet},

	// Tools and libraries.
	{"curl", "curl/8.5.0", "curl", sessiond.ClassCLI},
	{"wget", "Wget/1.21.4", "Wget", sessiond.ClassCLI},
	{"postman", "PostmanRuntime/7.42.0", "Postman", sessiond.ClassCLI},
	{"okhttp", "okhttp/4.12.0", "okhttp", sessiond.ClassCLI},
	{"go", "Go-http-client/2.0", "Go-http-client", sessiond.ClassCLI},
	{"python requests", "python-requests/2.32.3", "python-requests", sessiond.ClassCLI},
	{"python aiohttp", "Python/3.12 aiohttp/3.10.10", "aiohttp", sessiond.ClassCLI},
	{"httpie", "HTTPie/3.2.4", "HTTPie", sessiond.ClassCLI},
	{"java", "Java/17.0.2", "Java", sessiond.ClassCLI},
	{"powershell", "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6", "PowerShell", sessiond.ClassCLI},

	// Crawlers.
	{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot", sessiond.ClassBot},
	{"googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Googlebot", sessiond.ClassBot},
	{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "Bingbot", sessiond.ClassBot},
	{"bingbot chrome", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
		"Bingbot", sessiond.ClassBot},
	{"yandexbot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "YandexBot", sessiond.ClassBot},
	{"duckduckbot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "DuckDuckBot", sessiond.ClassBot},
	{"applebot", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
		"Applebot", sessiond.ClassBot},
	{"facebook", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "facebookexternalhit", sessiond.ClassBot},
	{"gptbot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", "GPTBot", sessiond.ClassBot},
	{"slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slackbot", sessiond.ClassBot},
	{"unknown crawler", "Mozilla/5.0 (compatible; ExampleCrawler/1.0; +https://example.com/crawler)", "ExampleCrawler", sessiond.ClassBot},
	{"headless chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
		"Headless Chrome", sessiond.ClassBot},

	// Applications.
	{"app on iphone", "MyApp/1.2 (iPhone; iOS 17.0; Scale/3.00)", "MyApp on iPhone", sessiond.ClassMobile},
	{"app alone", "MyApp/1.2", "MyApp", sessiond.ClassUnknown},
	{"electron app", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.191 Electron/33.2.1 Safari/537.36",
		"Slack on macOS", sessiond.ClassDesktop},
	{"ios webview", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"iPhone", sessiond.ClassMobile},

	// Nothing to go on, or hostile input.
	{"empty", "", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"blank", " \t ", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"bare mozilla", "Mozilla/5.0", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"64 KiB of A", strings.Repeat("A", 64<<10), useragent.UnknownDevice, sessiond.ClassUnknown},
	{"64 KiB after chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 " + strings.Repeat("A", 64<<10),
		"Chrome on Windows", sessiond.ClassDesktop},
	{"nul in curl", "curl/8.5.0\x00injected", "curl", sessiond.ClassCLI},
	{"newline in chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\nX-Evil: 1",
		"Chrome on Windows", sessiond.ClassDesktop},
	{"script after chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 <script>alert(1)</script>",
		"Chrome on Windows", sessiond.ClassDesktop},
	{"script alone", "<script>alert(1)</script>", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"script product", "<script>/1.0", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"invalid utf8", "\xff\xfe\xfd/1.0 (\xc3\x28)", useragent.UnknownDevice, sessiond.ClassUnknown},
	{"long product", strings.Repeat("a", 100) + "/1.0", useragent.UnknownDevice, sessiond.ClassUnknown},
}

func TestParse(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			device, class := useragent.Parse(tc.ua)
			if device != tc.device || class != tc.class {
				t.Errorf("Parse(%.80q) = %q, %q; want %q, %q", tc.ua, device, class, tc.device, tc.class)
			}
			checkOutput(t, device)
		})
	}
}

func checkOutput(t *testing.T, device string) {
	t.Helper()
	if !utf8.ValidString(device) {
		t.Fatalf("device %q is not valid UTF-8", device)
	}
	if n := utf8.RuneCountInString(device); n > useragent.MaxDevice || n == 0 {
		t.Fatalf("device %q has %d characters, want 1 to %d", device, n, useragent.MaxDevice)
	}
	for _, r := range device {
		if !unicode.IsPrint(r) {
			t.Fatalf("device %q has non-printable %U", device, r)
		}
	}
	if strings.ContainsAny(device, "<>\"'&") {
		t.Fatalf("device %q has markup characters", device)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range cases {
		if len(tc.ua) <= useragent.MaxInput {
			f.Add(tc.ua)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		device, class := useragent.Parse(s)
		checkOutput(t, device)
		switch class {
		case sessiond.ClassDesktop, sessiond.ClassMobile, sessiond.ClassTablet,
			sessiond.ClassCLI, sessiond.ClassBot, sessiond.ClassUnknown:
		default:
			t.Fatalf("class %q is not a device class", class)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, ua string }{
		{"chrome", cases[0].ua},
		{"safari-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
		{"curl", "curl/8.5.0"},
		{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
		{"64KiB", strings.Repeat("A", 64<<10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				useragent.Parse(bc.ua)
			}
		})
	}
}

func ExampleParse() {
	fmt.Println(useragent.Parse("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"))
	fmt.Println(useragent.Parse("curl/8.5.0"))
	fmt.Println(useragent.Parse(""))
	// Output:
	// Safari on iPhone mobile
	// curl cli
	// Unknown device unknown
}
