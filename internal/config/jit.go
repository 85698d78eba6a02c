package config

import (
	"fmt"
	"net/url"
	"regexp"
)

// JIT is the `jit:` section: where just-in-time requests are announced
// and decided besides the CLI and the console. Config file only.
type JIT struct {
	Slack   *Slack   `yaml:"slack"`
	Webhook *Webhook `yaml:"webhook"`
}

// Slack posts requests to a channel with Approve and Deny buttons. The
// Slack app's Interactivity Request URL must be
// https://GATEWAY:API_PORT/slack/interactions.
type Slack struct {
	// BotTokenFile holds the bot token (xoxb-...); it needs chat:write,
	// users:read.email and im:write.
	BotTokenFile string `yaml:"bot_token_file"`
	// SigningSecretFile holds the app's signing secret.
	SigningSecretFile string `yaml:"signing_secret_file"`
	// Channel is the channel ID (C...) approvals are posted to; the bot
	// must be a member.
	Channel string `yaml:"channel"`
	// APIURL is the Web API base; default https://slack.com/api/.
	APIURL string `yaml:"api_url"`
	// ResponseHosts are the hosts a callback's response_url may name;
	// default hooks.slack.com.
	ResponseHosts []string `yaml:"response_hosts"`
}

var slackChannel = regexp.MustCompile(`^[CDG][A-Z0-9]{2,20}$`)

func (j *JIT) validate() error {
	if j.Webhook != nil {
		if err := j.Webhook.validate(); err != nil {
			return err
		}
	}
	s := j.Slack
	if s == nil {
		return nil
	}
	switch {
	case s.BotTokenFile == "":
		return fmt.Errorf("jit.slack.bot_token_file: is required")
	case s.SigningSecretFile == "":
		return fmt.Errorf("jit.slack.signing_secret_file: is required (callbacks are verified with it)")
	case !slackChannel.MatchString(s.Channel):
		return fmt.Errorf("jit.slack.channel: %q is not a Slack channel ID (C...)", s.Channel)
	}
	if s.APIURL != "" {
		u, err := url.Parse(s.APIURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
			return fmt.Errorf("jit.slack.api_url: %q is not an https:// URL (http:// only on loopback)", s.APIURL)
		}
	}
	return nil
}

// Webhook posts requests and decisions as signed JSON (HMAC-SHA256) to a
// URL, with single-use approve and deny links into the console.
type Webhook struct {
	URL string `yaml:"url"`
	// SecretFile holds the shared secret the body is signed with.
	SecretFile string `yaml:"secret_file"`
	// ConsoleURL is the console's base the links point to,
	// https://GATEWAY:PORT.
	ConsoleURL string `yaml:"console_url"`
}

func (w *Webhook) validate() error {
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))):
		return fmt.Errorf("jit.webhook.url: %q is not an https:// URL (http:// only on loopback)", w.URL)
	case w.SecretFile == "":
		return fmt.Errorf("jit.webhook.secret_file: is required (the body is signed with it)")
	}
	c, err := url.Parse(w.ConsoleURL)
	if err != nil || c.Scheme != "https" || c.Host == "" || (c.Path != "" && c.Path != "/") {
		return fmt.Errorf("jit.webhook.console_url: %q must be https://HOST[:PORT], the console's address", w.ConsoleURL)
	}
	return nil
}
