// Package useragent turns a User-Agent header into the short device name and
// device class that sessiond keeps for each session ("Chrome on Windows",
// "desktop"). The raw header is never stored.
//
// Browsers are recognised by github.com/mileusna/useragent; this package
// bounds the work, names HTTP tools and crawlers itself, and guarantees that
// what comes out is short, clean text.
package useragent

import (
	"strings"
	"unicode"
	"unicode/utf8"

	ua "github.com/mileusna/useragent"
)

const (
	// MaxInput is how many bytes of a User-Agent are looked at. Real ones are
	// far shorter; the rest of a long header is ignored so that a 64 KiB
	// header costs no more than a normal one.
	MaxInput = 512
	// MaxDevice is the most characters (runes) Parse returns.
	MaxDevice = 64
	// UnknownDevice is the device name of an empty or unrecognisable
	// User-Agent.
	UnknownDevice = "Unknown device"

	// maxProduct bounds a product name taken from the header itself (an
	// unknown application or crawler); longer ones are not names.
	maxProduct = 40
)

// Device classes Parse returns; they are the values of sessiond's Class
// constants, which this package does not import so that sessiond can.
const (
	ClassDesktop = "desktop"
	ClassMobile  = "mobile"
	ClassTablet  = "tablet"
	ClassCLI     = "cli"
	ClassBot     = "bot"
	ClassUnknown = "unknown"
)

// Parse returns a short device name and a device class (one of the Class
// constants) for a User-Agent header.
//
// Browsers are named "<browser> on <platform>": "Chrome on Windows",
// "Safari on iPhone", "Firefox on iPad", "Samsung Internet on Android",
// "Chrome on ChromeOS". iPadOS 13 and later ask for desktop sites with a
// Macintosh User-Agent, which cannot be told apart from a Mac: it reads
// "Safari on macOS", class desktop. Android browsers that leave out the
// "Mobile" token (Chrome's convention for tablets) are class tablet.
//
// HTTP tools and libraries are named by their product ("curl", "Postman",
// "okhttp", "Go-http-client", "python-requests", "Wget", ...) with class cli.
// Crawlers get their usual name ("Googlebot", "Bingbot", ...) and class bot.
//
// An unknown application that names itself with a product token, such as
// "MyApp/1.2 (iPhone; iOS 17.0)", is reported by that product name, followed
// by the platform when its comment names one ("MyApp on iPhone", class
// mobile); without a platform its class is unknown, since nothing says
// whether a person or a program is behind it. Product names taken from the
// header are kept only when they are plain tokens (ASCII letters, digits and
// "._+-", at most 40 bytes); anything else reads as "Unknown device".
//
// An empty header gives "Unknown device", class unknown. Only the first
// MaxInput bytes are parsed. The result is at most MaxDevice characters of
// valid UTF-8 with no control or other non-printable characters.
func Parse(userAgent string) (device, class string) {
	s := clean(userAgent)
	if s == "" {
		return UnknownDevice, ClassUnknown
	}
	if name, ok := tool(s); ok {
		return name, ClassCLI
	}
	if name, ok := knownBot(s); ok {
		return name, ClassBot
	}

	u := ua.Parse(s)
	name, isBrowser := browsers[u.Name]
	if !isBrowser {
		name = productName(s, u.Name)
	}
	if u.Bot || isBotName(name) {
		if name == "" {
			name = "Bot"
		}
		return finish(name), ClassBot
	}

	platform, class := platformOf(s, &u, isBrowser)
	switch {
	case name != "" && platform != "":
		device = name + " on " + platform
	case name != "":
		device = name
	case platform != "":
		device = platform
	default:
		device = UnknownDevice
	}
	return finish(device), class
}

// clean returns the first MaxInput bytes of s with every byte that has no
// place in a User-Agent (control characters, non-ASCII bytes and the
// characters that only markup needs) turned into a space, so that nothing
// hostile reaches the parser or, through it, the result.
func clean(s string) string {
	if len(s) > MaxInput {
		s = s[:MaxInput]
	}
	var buf [MaxInput]byte
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20, c >= 0x7f, c == '<', c == '>', c == '"', c == '\'', c == '`', c == '\\':
			c = ' '
		}
		b[i] = c
	}
	return strings.TrimSpace(string(b))
}

// finish makes sure the result is short, printable UTF-8. Parse builds its
// results from clean ASCII already; this is the last line of defence.
func finish(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == MaxDevice {
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	out := strings.TrimSpace(b.String())
	if out == "" {
		return UnknownDevice
	}
	return out
}

// browsers maps the library's names of browsers (and in-app browsers) to
// the names people know them by.
var browsers = map[string]string{
	ua.Chrome:           "Chrome",
	ua.Firefox:          "Firefox",
	ua.Safari:           "Safari",
	ua.MobileSafari:     "Safari",
	ua.Edge:             "Edge",
	ua.Opera:            "Opera",
	ua.OperaTouch:       "Opera",
	ua.OperaMini:        "Opera Mini",
	ua.Vivaldi:          "Vivaldi",
	ua.InternetExplorer: "Internet Explorer",
	ua.SamsungBrowser:   "Samsung Internet",
	ua.HeadlessChrome:   "Headless Chrome",
	ua.FacebookApp:      "Facebook",
	ua.InstagramApp:     "Instagram",
	ua.TiktokApp:        "TikTok",
	ua.NetFront:         "NetFront",
	"Miui Browser":      "MIUI Browser",
	"Huawei Browser":    "Huawei Browser",
	"Android browser":   "Android Browser",
	"YaBrowser":         "Yandex Browser",
	"UCBrowser":         "UC Browser",
	"Whale":             "Whale",
	"DuckDuckGo":        "DuckDuckGo",
	"Brave":             "Brave",
}

// productName returns name, the library's guess at an unknown browser or
// application, when it is a plain product token that the header really
// carries as "name/version"; otherwise "". The library falls back to parts
// of comments or the whole header, which are not names.
func productName(s, name string) string {
	if name == "" || len(name) > maxProduct || !isToken(name) {
		return ""
	}
	if !strings.Contains(s, name+"/") {
		return ""
	}
	return name
}

// isToken reports whether s is a letter followed by ASCII letters, digits
// and "._+-".
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

func isBotName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "bot") || strings.Contains(n, "spider") || strings.Contains(n, "crawler")
}

// platformOf names the platform of a parsed User-Agent and gives the class
// it implies.
func platformOf(s string, u *ua.UserAgent, isBrowser bool) (platform, class string) {
	switch u.OS {
	case ua.Android:
		// Chrome and its derivatives mark phones with "Mobile" and tablets
		// by leaving it out; applications follow no such rule.
		if u.Tablet || (isBrowser && !strings.Contains(s, "Mobile")) {
			return "Android", ClassTablet
		}
		return "Android", ClassMobile
	case ua.IOS:
		if u.Device == "iPad" {
			return "iPad", ClassTablet
		}
		return "iPhone", ClassMobile
	case ua.WindowsPhone:
		return "Windows Phone", ClassMobile
	case ua.BlackBerry:
		return "BlackBerry", ClassMobile
	case ua.Harmony:
		if u.Tablet {
			return "HarmonyOS", ClassTablet
		}
		return "HarmonyOS", ClassMobile
	case ua.Windows, ua.MacOS, ua.Linux, ua.ChromeOS, ua.FreeBSD:
		switch {
		case u.Tablet:
			return u.OS, ClassTablet
		case u.Mobile:
			return u.OS, ClassMobile
		}
		return u.OS, ClassDesktop
	}
	switch {
	case u.Tablet:
		return "", ClassTablet
	case u.Mobile:
		return "", ClassMobile
	}
	return "", ClassUnknown
}

// toolInfo names an HTTP tool or library by its product token.
type toolInfo struct {
	product string // lower case, as matched
	name    string // as shown
	// runtime marks a language runtime's default product ("Python/3.12
	// aiohttp/3.9"): a library named after it is the better name.
	runtime bool
}

var tools = []toolInfo{
	{product: "curl", name: "curl"},
	{product: "wget", name: "Wget"},
	{product: "postmanruntime", name: "Postman"},
	{product: "insomnia", name: "Insomnia"},
	{product: "httpie", name: "HTTPie"},
	{product: "okhttp", name: "okhttp"},
	{product: "go-http-client", name: "Go-http-client"},
	{product: "python-requests", name: "python-requests"},
	{product: "python-urllib", name: "Python-urllib"},
	{product: "python-httpx", name: "python-httpx"},
	{product: "aiohttp", name: "aiohttp"},
	{product: "java-http-client", name: "Java-http-client"},
	{product: "apache-httpclient", name: "Apache-HttpClient"},
	{product: "axios", name: "axios"},
	{product: "node-fetch", name: "node-fetch"},
	{product: "undici", name: "undici"},
	{product: "deno", name: "Deno"},
	{product: "bun", name: "Bun"},
	{product: "faraday", name: "Faraday"},
	{product: "rest-client", name: "rest-client"},
	{product: "guzzlehttp", name: "Guzzle"},
	{product: "libwww-perl", name: "libwww-perl"},
	{product: "restsharp", name: "RestSharp"},
	{product: "powershell", name: "PowerShell"},
	{product: "windowspowershell", name: "PowerShell"},
	{product: "k6", name: "k6"},
	{product: "python", name: "Python", runtime: true},
	{product: "java", name: "Java", runtime: true},
	{product: "node", name: "Node.js", runtime: true},
	{product: "dart", name: "Dart", runtime: true},
	{product: "ruby", name: "Ruby", runtime: true},
}

// tool recognises HTTP tools and libraries by the product tokens (outside
// comments) at the start of the header. "Mozilla/5.0" is passed over so
// that PowerShell, which sends a browser-like prefix, is found; any other
// unknown product ends the search, so a browser is never taken for a tool.
func tool(s string) (string, bool) {
	fallback := ""
	for range 8 {
		var name string
		name, s = nextProduct(s)
		switch {
		case name == "":
			return fallback, fallback != ""
		case strings.EqualFold(name, "Mozilla"):
			continue
		}
		t, ok := lookupTool(name)
		switch {
		case !ok:
			return fallback, fallback != ""
		case !t.runtime:
			return t.name, true
		case fallback == "":
			fallback = t.name
		}
	}
	return fallback, fallback != ""
}

func lookupTool(name string) (toolInfo, bool) {
	for _, t := range tools {
		if len(t.product) == len(name) && strings.EqualFold(t.product, name) {
			return t, true
		}
	}
	return toolInfo{}, false
}

// nextProduct returns the name (the part before "/") of the first product
// token of s, skipping comments in parentheses, and the rest of s.
func nextProduct(s string) (name, rest string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case c == ' ' || depth > 0:
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
				j++
			}
			tok := s[i:j]
			if k := strings.IndexByte(tok, '/'); k >= 0 {
				tok = tok[:k]
			}
			if tok == "" {
				// A bare "/1.0": not a product; report it as unknown.
				tok = "/"
			}
			return tok, s[j:]
		}
	}
	return "", ""
}

// bots are crawlers and link-preview fetchers, matched case-insensitively
// anywhere in the header. The more specific needle comes first.
var bots = []struct{ needle, name string }{
	{"adsbot-google", "AdsBot-Google"},
	{"mediapartners-google", "Mediapartners-Google"},
	{"google-inspectiontool", "Google-InspectionTool"},
	{"storebot-google", "Storebot-Google"},
	{"feedfetcher-google", "Feedfetcher-Google"},
	{"googleother", "GoogleOther"},
	{"googlebot", "Googlebot"},
	{"bingbot", "Bingbot"},
	{"bingpreview", "BingPreview"},
	{"adidxbot", "AdIdxBot"},
	{"yandexbot", "YandexBot"},
	{"yandex.com/bots", "YandexBot"},
	{"duckduckbot", "DuckDuckBot"},
	{"baiduspider", "Baiduspider"},
	{"applebot", "Applebot"},
	{"slurp", "Yahoo! Slurp"},
	{"sogou web spider", "Sogou"},
	{"exabot", "Exabot"},
	{"petalbot", "PetalBot"},
	{"bytespider", "Bytespider"},
	{"gptbot", "GPTBot"},
	{"chatgpt-user", "ChatGPT-User"},
	{"oai-searchbot", "OAI-SearchBot"},
	{"claudebot", "ClaudeBot"},
	{"claude-user", "Claude-User"},
	{"perplexitybot", "PerplexityBot"},
	{"ccbot", "CCBot"},
	{"amazonbot", "Amazonbot"},
	{"ahrefsbot", "AhrefsBot"},
	{"semrushbot", "SemrushBot"},
	{"mj12bot", "MJ12bot"},
	{"dotbot", "DotBot"},
	{"facebookexternalhit", "facebookexternalhit"},
	{"facebookcatalog", "facebookcatalog"},
	{"meta-externalagent", "meta-externalagent"},
	{"twitterbot", "Twitterbot"},
	{"linkedinbot", "LinkedInBot"},
	{"slackbot", "Slackbot"},
	{"discordbot", "Discordbot"},
	{"telegrambot", "TelegramBot"},
	{"pinterestbot", "Pinterestbot"},
	{"redditbot", "redditbot"},
	{"uptimerobot", "UptimeRobot"},
}

// knownBot matches the header against bots.
func knownBot(s string) (string, bool) {
	lower := strings.ToLower(s)
	for _, b := range bots {
		if strings.Contains(lower, b.needle) {
			return b.name, true
		}
	}
	return "", false
}
