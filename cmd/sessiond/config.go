package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
)

// config is the whole configuration, read from SESSIOND_* variables and
// the flags that mirror them (a flag wins over its variable).
type config struct {
	Addr             string
	AdminAddr        string // "off": no admin listener
	DataDir          string
	RedisURL         string
	DatabaseURL      string
	AccessTTL        time.Duration
	IdleTimeout      time.Duration
	AbsoluteLifetime time.Duration
	MaxSessions      int
	TrustedProxies   string
	LimitPolicy      string
	RefreshGrace     time.Duration
	SigningKeyFile   string
	RefreshKeyFile   string
	AdminKeysFile    string // the data directory's admin-keys when not set
	GeoIPDB          string
	RedisStrict      bool
	RedisTimeout     time.Duration
	RedisChecks      string
	RedisReplicaAcks int
	Signup           bool
	Issuer           string
	PublicURL        string
	Users            string // usersInternal or usersExternal
	LoginURL         string
	LogLevel         string
	Pprof            bool
	MaxStreams       int
	CORSOrigins      []string
	BasePath         string
	ReturnURLs       string
	WebhookURL       string
	WebhookSecret    string // the file; <data dir>/webhook-secret when not set
	SMTPURL          string
	MailFrom         string
}

// flagName turns SESSIOND_ACCESS_TTL into access-ttl.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "SESSIOND_")), "_", "-")
}

// newFlagSet returns the flags of every subcommand, with defaults taken
// from the environment, and a function that checks what was parsed.
func newFlagSet(name string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *config, func() error) {
	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var errs []error
	str := func(p *string, env, def, usage string) {
		v := def
		if e := getenv(env); e != "" {
			v = e
		}
		fs.StringVar(p, flagName(env), v, usage+" ("+env+")")
	}
	dur := func(p *time.Duration, env string, def time.Duration, usage string) {
		v := def
		if e := getenv(env); e != "" {
			d, err := time.ParseDuration(e)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration like 15m or 720h", env, e))
			}
			v = d
		}
		fs.DurationVar(p, flagName(env), v, usage+" ("+env+")")
	}
	boolean := func(p *bool, env string, def bool, usage string) {
		v := def
		if e := getenv(env); e != "" {
			b, err := strconv.ParseBool(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", env, e))
			}
			v = b
		}
		fs.BoolVar(p, flagName(env), v, usage+" ("+env+")")
	}
	str(&c.Addr, "SESSIOND_ADDR", "localhost:8080", "listen address")
	str(&c.AdminAddr, "SESSIOND_ADMIN_ADDR", "localhost:8081", "admin listener address (/admin/v1, /metrics, /healthz, /readyz), or off")
	str(&c.DataDir, "SESSIOND_DATA_DIR", "./data", "SQLite file and generated keys")
	// secret is str for a variable that can hold a secret. It may instead
	// be given as <NAME>_FILE, a path to a file holding the value (the
	// container convention: the secret stays out of the environment, which
	// process listings and crash reports show). Its flag shows no default,
	// so -h never prints the secret.
	secret := func(p *string, env, usage string) {
		*p = getenv(env)
		if path := getenv(env + "_FILE"); path != "" {
			if *p != "" {
				errs = append(errs, fmt.Errorf("%s and %s_FILE are both set: set one of them", env, env))
			} else if b, err := os.ReadFile(path); err != nil {
				// The error names the path, never what the file holds.
				errs = append(errs, fmt.Errorf("%s_FILE: %w", env, err))
			} else {
				// Editors end a file with a newline; the value does not.
				v, ok := strings.CutSuffix(string(b), "\n")
				if ok {
					v = strings.TrimSuffix(v, "\r")
				}
				*p = v
			}
		}
		fs.Func(flagName(env), usage+" ("+env+", or "+env+"_FILE naming a file that holds it)", func(s string) error { *p = s; return nil })
	}
	secret(&c.RedisURL, "SESSIOND_REDIS_URL", "Redis for sessions: redis://host:port, or a comma-separated seed list for Cluster")
	secret(&c.DatabaseURL, "SESSIOND_DATABASE_URL", "PostgreSQL for users: postgres://...")
	dur(&c.AccessTTL, "SESSIOND_ACCESS_TTL", sessiond.DefaultAccessTTL, "access token lifetime")
	dur(&c.IdleTimeout, "SESSIOND_IDLE_TIMEOUT", sessiond.DefaultIdleTimeout, "session idle timeout")
	dur(&c.AbsoluteLifetime, "SESSIOND_ABSOLUTE_LIFETIME", sessiond.DefaultAbsoluteLifetime, "session absolute lifetime (0: none, weaker)")
	max := strconv.Itoa(sessiond.DefaultMaxSessions)
	if e := getenv("SESSIOND_MAX_SESSIONS"); e != "" {
		max = e
	}
	maxStr := max
	fs.Func(flagName("SESSIOND_MAX_SESSIONS"), "sessions per user, 1 to "+strconv.Itoa(sessiond.HardMaxSessions)+" (SESSIOND_MAX_SESSIONS, default "+strconv.Itoa(sessiond.DefaultMaxSessions)+")", func(s string) error { maxStr = s; return nil })
	str(&c.TrustedProxies, "SESSIOND_TRUSTED_PROXIES", "", "CIDRs or IPs whose X-Forwarded-For is believed")
	str(&c.LimitPolicy, "SESSIOND_SESSION_LIMIT_POLICY", string(sessiond.PolicyEvict), "evict or deny at the session cap")
	dur(&c.RefreshGrace, "SESSIOND_REFRESH_GRACE", sessiond.DefaultRefreshGrace, "refresh token replay grace")
	str(&c.SigningKeyFile, "SESSIOND_SIGNING_KEY_FILE", "", "Ed25519 PKCS#8 PEM signing key (default: generated in the data directory)")
	str(&c.RefreshKeyFile, "SESSIOND_REFRESH_KEY_FILE", "", "refresh token key, 32 random bytes in base64 (default: generated in the data directory)")
	str(&c.AdminKeysFile, "SESSIOND_ADMIN_KEYS_FILE", "", "admin API keys, one NAME SHA256-HEX line each (default: admin-keys in the data directory)")
	str(&c.GeoIPDB, "SESSIOND_GEOIP_DB", "", "MaxMind-format .mmdb for locations")
	boolean(&c.RedisStrict, "SESSIOND_REDIS_STRICT", false, "read Redis on every request instead of the client-side cache")
	dur(&c.RedisTimeout, "SESSIOND_REDIS_TIMEOUT", 100*time.Millisecond, "deadline of each Redis call")
	str(&c.RedisChecks, "SESSIOND_REDIS_CHECKS", "refuse", "refuse or warn about an unsafe Redis configuration")
	acksStr := getenv("SESSIOND_REDIS_REPLICA_ACKS")
	fs.Func(flagName("SESSIOND_REDIS_REPLICA_ACKS"), "replicas that must acknowledge each revocation and refresh before it is answered, 0 for none (SESSIOND_REDIS_REPLICA_ACKS, default 0)", func(s string) error { acksStr = s; return nil })
	boolean(&c.Signup, "SESSIOND_SIGNUP", true, "whether sign-up is open")
	str(&c.Issuer, "SESSIOND_ISSUER", "sessiond", "JWT iss and aud")
	str(&c.PublicURL, "SESSIOND_PUBLIC_URL", "", "the origin users see, e.g. https://auth.example.com")
	str(&c.Users, "SESSIOND_USERS", usersInternal, "internal: sessiond keeps users and passwords; external: the app signs its users in and starts their sessions")
	str(&c.LoginURL, "SESSIOND_LOGIN_URL", "", "where browsers are sent to sign in: an http(s) URL or a path starting with / (default: the built-in page)")
	str(&c.LogLevel, "SESSIOND_LOG_LEVEL", "info", "debug, info, warn or error")
	boolean(&c.Pprof, "SESSIOND_PPROF", false, "serve Go's profiles (net/http/pprof) at /debug/pprof/ on the admin listener, for profiling under load")
	streams := strconv.Itoa(sessiondhttp.DefaultMaxStreams)
	if e := getenv("SESSIOND_MAX_STREAMS"); e != "" {
		streams = e
	}
	fs.Func(flagName("SESSIOND_MAX_STREAMS"), "event streams open at once on this instance (SESSIOND_MAX_STREAMS, default "+strconv.Itoa(sessiondhttp.DefaultMaxStreams)+")", func(s string) error { streams = s; return nil })
	var corsOrigins string
	str(&c.BasePath, "SESSIOND_BASE_PATH", "/", "path prefix of everything the public listener serves, e.g. /auth/")
	str(&c.ReturnURLs, "SESSIOND_RETURN_URLS", "", "comma-separated origins or URL prefixes that return_to may name besides relative paths")
	str(&corsOrigins, "SESSIOND_CORS_ORIGINS", "", "comma-separated exact origins whose pages may call the API with Bearer tokens")
	str(&c.WebhookURL, "SESSIOND_WEBHOOK_URL", "", "where security events are POSTed, signed with the Standard Webhooks scheme (default: no webhooks)")
	str(&c.WebhookSecret, "SESSIOND_WEBHOOK_SECRET_FILE", "", "the webhooks' signing secret, whsec_ and base64 (default: generated as webhook-secret in the data directory)")
	secret(&c.SMTPURL, "SESSIOND_SMTP_URL", "SMTP server for new-sign-in e-mails: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://...")
	str(&c.MailFrom, "SESSIOND_MAIL_FROM", "", "From address of new-sign-in e-mails")
	check := func() error {
		if len(errs) > 0 {
			return errs[0]
		}
		if c.AdminAddr != "off" {
			if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
				return fmt.Errorf("SESSIOND_ADMIN_ADDR: %q is not host:port or off", c.AdminAddr)
			}
		}
		if c.AdminKeysFile == "" {
			c.AdminKeysFile = filepath.Join(c.DataDir, "admin-keys")
		}
		if c.WebhookSecret == "" {
			c.WebhookSecret = filepath.Join(c.DataDir, "webhook-secret")
		}
		if c.WebhookURL != "" {
			u, err := url.Parse(c.WebhookURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				// The value is not quoted: its user info or query may
				// hold the endpoint's credentials.
				return fmt.Errorf("SESSIOND_WEBHOOK_URL: not an http(s) URL with a host, like https://app.example.com/hooks/sessiond")
			}
		}
		if c.SMTPURL != "" && c.MailFrom == "" {
			return fmt.Errorf("SESSIOND_MAIL_FROM: must be set with SESSIOND_SMTP_URL (the From address of new-sign-in e-mails)")
		}
		n, err := strconv.Atoi(maxStr)
		if err != nil || n < 1 || n > sessiond.HardMaxSessions {
			return fmt.Errorf("SESSIOND_MAX_SESSIONS: %q is not a whole number from 1 to %d (the hard maximum of sessions per user; 0 no longer means no cap)", maxStr, sessiond.HardMaxSessions)
		}
		c.MaxSessions = n
		n, err = strconv.Atoi(streams)
		if err != nil || n < 1 {
			return fmt.Errorf("SESSIOND_MAX_STREAMS: %q is not a whole number >= 1", streams)
		}
		c.MaxStreams = n
		if acksStr != "" {
			n, err := strconv.Atoi(acksStr)
			if err != nil || n < 0 {
				return fmt.Errorf("SESSIOND_REDIS_REPLICA_ACKS: %q is not a whole number >= 0", acksStr)
			}
			c.RedisReplicaAcks = n
		}
		switch sessiond.CapPolicy(c.LimitPolicy) {
		case sessiond.PolicyEvict, sessiond.PolicyDeny:
		default:
			return fmt.Errorf("SESSIOND_SESSION_LIMIT_POLICY: %q is not evict or deny", c.LimitPolicy)
		}
		switch c.RedisChecks {
		case "refuse", "warn":
		default:
			return fmt.Errorf("SESSIOND_REDIS_CHECKS: %q is not refuse or warn", c.RedisChecks)
		}
		for _, d := range []struct {
			env    string
			v      time.Duration
			zeroOK bool
		}{
			{"SESSIOND_ACCESS_TTL", c.AccessTTL, false},
			{"SESSIOND_IDLE_TIMEOUT", c.IdleTimeout, false},
			{"SESSIOND_ABSOLUTE_LIFETIME", c.AbsoluteLifetime, true},
			{"SESSIOND_REFRESH_GRACE", c.RefreshGrace, true},
			{"SESSIOND_REDIS_TIMEOUT", c.RedisTimeout, false},
		} {
			if d.v < 0 || d.v == 0 && !d.zeroOK {
				want := "positive"
				if d.zeroOK {
					want = "zero or positive"
				}
				return fmt.Errorf("%s: %s is not %s", d.env, d.v, want)
			}
		}
		if strings.TrimSpace(c.Issuer) == "" {
			return fmt.Errorf("SESSIOND_ISSUER: must not be empty")
		}
		if c.BasePath, err = sessiondhttp.ParseBasePath(c.BasePath); err != nil {
			return fmt.Errorf("SESSIOND_BASE_PATH: %w", err)
		}
		if _, err := sessiondhttp.ParseReturnRules(c.ReturnURLs, ""); err != nil {
			return fmt.Errorf("SESSIOND_RETURN_URLS: %w", err)
		}
		if c.CORSOrigins, err = sessiondhttp.ParseCORSOrigins(corsOrigins); err != nil {
			return fmt.Errorf("SESSIOND_CORS_ORIGINS: %w", err)
		}
		if c.PublicURL != "" {
			u, err := url.Parse(c.PublicURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
				return fmt.Errorf("SESSIOND_PUBLIC_URL: %q is not an origin like https://auth.example.com", c.PublicURL)
			}
		}
		switch c.Users {
		case usersInternal, usersExternal:
		default:
			return fmt.Errorf("SESSIOND_USERS: %q is not internal (sessiond keeps users and passwords) or external (the app signs its users in)", c.Users)
		}
		if c.SMTPURL != "" && !c.external() && c.PublicURL == "" {
			// Without it the e-mail's "not me" link would be a bare path,
			// which no mail reader can open.
			return fmt.Errorf("SESSIOND_PUBLIC_URL: must be set with SESSIOND_SMTP_URL (the origin of the link in new-sign-in e-mails)")
		}
		if c.LoginURL != "" && !validLoginURL(c.LoginURL) {
			return fmt.Errorf("SESSIOND_LOGIN_URL: %q is not an http(s) URL like https://app.example.com/login or a path starting with / like /login", c.LoginURL)
		}
		return nil
	}
	return fs, c, check
}

// The values of SESSIOND_USERS.
const (
	usersInternal = "internal"
	usersExternal = "external"
)

// external reports whether the app signs its users in (SESSIOND_USERS).
func (c *config) external() bool { return c.Users == usersExternal }

// validLoginURL reports whether s is an absolute http(s) URL with a host,
// or a path on this origin ("/login", not "//evil.example" or "/\evil",
// which browsers read as another host).
func validLoginURL(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil {
		return false
	}
	if strings.HasPrefix(s, "/") {
		return u.Scheme == "" && u.Host == "" && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\")
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && !strings.Contains(s, "\\")
}
