package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Runner runs one external tool with stdin and returns its standard output.
// It is the seam between the rule logic and the host: ExecRunner runs real
// binaries, unit tests substitute a fake.
type Runner interface {
	Run(ctx context.Context, stdin string, name string, args ...string) (string, error)
}

// ExecRunner runs tools with os/exec. The child process inherits the
// calling OS thread's network namespace, so a caller that has locked its
// goroutine to a thread and entered a namespace programs that namespace.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		pkg := "iptables"
		if name == "ip" {
			pkg = "iproute2"
		}
		return "", fmt.Errorf("%s not found: install %s (apt-get install %s): %w", name, pkg, pkg, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Backend selects the iptables implementation.
type Backend string

const (
	// BackendDefault runs iptables-restore / iptables-save as installed (on
	// Debian, the nf_tables backend through the alternatives system).
	BackendDefault Backend = ""
	// BackendNFT runs the iptables-nft-* tools (nf_tables kernel API).
	BackendNFT Backend = "nft"
	// BackendLegacy runs the iptables-legacy-* tools (x_tables kernel API).
	BackendLegacy Backend = "legacy"
)

// ParseBackend parses "", "auto", "nft" or "legacy".
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "", "auto", "default":
		return BackendDefault, nil
	case "nft":
		return BackendNFT, nil
	case "legacy":
		return BackendLegacy, nil
	}
	return "", fmt.Errorf("unknown iptables backend %q (want auto, nft or legacy)", s)
}

// tool names the binary for (family, backend, "restore"|"save").
func (b Backend) tool(f Family, verb string) string {
	name := "iptables"
	if f == IPv6 {
		name = "ip6tables"
	}
	if b != BackendDefault {
		name += "-" + string(b)
	}
	return name + "-" + verb
}

// Iptables installs and removes rule sets in the current network namespace.
// It holds no state beyond its configuration; safe for concurrent use if the
// Runner is.
type Iptables struct {
	run     Runner
	backend Backend
}

// NewIptables returns an installer running tools through run (nil means
// ExecRunner) with the given backend.
func NewIptables(run Runner, backend Backend) (*Iptables, error) {
	if _, err := ParseBackend(string(backend)); err != nil {
		return nil, err
	}
	if run == nil {
		run = ExecRunner{}
	}
	return &Iptables{run: run, backend: backend}, nil
}

// Apply installs rs. Any ISTIO_* chains and jumps already present (from an
// earlier Apply, or from Istio) are replaced in the same iptables-restore
// transaction, so re-applying is idempotent and there is no window without
// capture. TPROXY mode's policy routing is installed first (with `ip`), so
// that marked packets always have their route.
func (t *Iptables) Apply(ctx context.Context, rs Ruleset) error {
	for _, f := range rs.Families() {
		if rs.Routing.enabled() {
			if err := t.addRouting(ctx, f, rs.Routing); err != nil {
				return err
			}
		}
		saved, err := t.save(ctx, f)
		if err != nil {
			return err
		}
		input := mergeRestore(rs.Tables(f), saved)
		if err := t.restore(ctx, f, input); err != nil {
			return fmt.Errorf("applying %s capture rules: %w", f, err)
		}
	}
	return nil
}

// Remove deletes the ISTIO_* chains Apply creates and every jump into them,
// leaving all other rules alone. It is idempotent: on a namespace without
// capture rules it changes nothing. ipv6 also cleans the ip6tables rules.
func (t *Iptables) Remove(ctx context.Context, ipv6 bool) error {
	fams := []Family{IPv4}
	if ipv6 {
		fams = append(fams, IPv6)
	}
	for _, f := range fams {
		saved, err := t.save(ctx, f)
		if err != nil {
			return err
		}
		input := mergeRestore(nil, saved)
		if input == "" {
			continue
		}
		if err := t.restore(ctx, f, input); err != nil {
			return fmt.Errorf("removing %s capture rules: %w", f, err)
		}
	}
	return nil
}

// RemoveRouting deletes TPROXY mode's policy rule and its table's route
// (both families when ipv6). What is not there is no error.
func (t *Iptables) RemoveRouting(ctx context.Context, r Routing, ipv6 bool) error {
	fams := []Family{IPv4}
	if ipv6 {
		fams = append(fams, IPv6)
	}
	for _, f := range fams {
		delRule, delRoute := r.removeCommands(f)
		for {
			out, err := t.run.Run(ctx, "", "ip", r.listRuleCommand(f)...)
			if err != nil {
				return fmt.Errorf("listing %s policy rules: %w", f, err)
			}
			if strings.TrimSpace(out) == "" {
				break
			}
			if _, err := t.run.Run(ctx, "", "ip", delRule...); err != nil {
				return fmt.Errorf("removing %s policy rule: %w", f, err)
			}
		}
		if _, err := t.run.Run(ctx, "", "ip", delRoute...); err != nil && !routeAbsent(err) {
			return fmt.Errorf("removing %s route table %d: %w", f, r.Table, err)
		}
	}
	return nil
}

// routeAbsent reports whether `ip route del` failed because there was
// nothing to delete (no such route, or the table does not exist).
func routeAbsent(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No such process") || strings.Contains(msg, "does not exist") ||
		strings.Contains(msg, "No such file or directory")
}

// addRouting installs the family's local route table and, if absent, the
// policy rule pointing marked packets at it.
func (t *Iptables) addRouting(ctx context.Context, f Family, r Routing) error {
	cmds := r.addCommands(f)
	if _, err := t.run.Run(ctx, "", "ip", cmds[0]...); err != nil {
		return fmt.Errorf("installing %s TPROXY route table %d: %w", f, r.Table, err)
	}
	out, err := t.run.Run(ctx, "", "ip", r.listRuleCommand(f)...)
	if err != nil {
		return fmt.Errorf("listing %s policy rules: %w", f, err)
	}
	if strings.TrimSpace(out) != "" {
		return nil
	}
	if _, err := t.run.Run(ctx, "", "ip", cmds[1]...); err != nil {
		return fmt.Errorf("installing %s TPROXY policy rule (fwmark %d → table %d): %w", f, r.Mark, r.Table, err)
	}
	return nil
}

// Save returns iptables-save's output for the family, for diagnostics.
func (t *Iptables) Save(ctx context.Context, f Family) (string, error) { return t.save(ctx, f) }

func (t *Iptables) save(ctx context.Context, f Family) (string, error) {
	out, err := t.run.Run(ctx, "", t.backend.tool(f, "save"))
	if err != nil {
		return "", fmt.Errorf("reading current %s rules: %w", f, err)
	}
	return out, nil
}

func (t *Iptables) restore(ctx context.Context, f Family, input string) error {
	// --wait serialises with other users of the legacy xtables lock; the
	// nft backend accepts and ignores it.
	_, err := t.run.Run(ctx, input, t.backend.tool(f, "restore"), "--noflush", "--wait", "5")
	return err
}

// savedTable is what iptables-save shows of one table.
type savedTable struct {
	chains []string // user-defined and built-in chain names, in order
	rules  []string // "-A CHAIN ..." lines
}

// parseSave parses iptables-save output into tables by name.
func parseSave(s string) (map[string]*savedTable, []string) {
	tables := map[string]*savedTable{}
	var order []string
	var cur *savedTable
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			name := line[1:]
			cur = &savedTable{}
			tables[name] = cur
			order = append(order, name)
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			if name, _, ok := strings.Cut(line[1:], " "); ok {
				cur.chains = append(cur.chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			cur.rules = append(cur.rules, line)
		}
	}
	return tables, order
}

// ruleChainAndTarget returns a saved rule's chain and its jump or goto
// target ("" if none).
func ruleChainAndTarget(rule string) (chain, target string) {
	f := strings.Fields(rule)
	if len(f) >= 2 {
		chain = f[1]
	}
	for i := 2; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" || f[i] == "--jump" || f[i] == "--goto" {
			target = f[i+1]
		}
	}
	return chain, target
}

// mergeRestore builds one iptables-restore --noflush input that removes the
// managed chains found in saved (jumps into them, their rules, and the
// chains no longer wanted) and installs want. It returns "" when there is
// nothing to do.
func mergeRestore(want []Table, saved string) string {
	tables, order := parseSave(saved)
	wanted := map[string]Table{}
	for _, t := range want {
		wanted[t.Name] = t
		if _, ok := tables[t.Name]; !ok {
			order = append(order, t.Name)
		}
	}
	var b strings.Builder
	for _, name := range order {
		managed := managedChains(name)
		var pre []string
		if st := tables[name]; st != nil {
			var existing []string
			for _, c := range st.chains {
				if slices.Contains(managed, c) {
					existing = append(existing, c)
				}
			}
			// Jumps from other chains into ours (e.g. OUTPUT -j ISTIO_OUTPUT).
			for _, r := range st.rules {
				chain, target := ruleChainAndTarget(r)
				if slices.Contains(existing, target) && !slices.Contains(existing, chain) {
					pre = append(pre, "-D"+strings.TrimPrefix(r, "-A"))
				}
			}
			for _, c := range existing {
				pre = append(pre, "-F "+c)
			}
			for _, c := range existing {
				if !slices.Contains(wanted[name].Chains, c) {
					pre = append(pre, "-X "+c)
				}
			}
		}
		t, ok := wanted[name]
		if !ok && len(pre) == 0 {
			continue
		}
		t.Name = name
		writeTable(&b, t, pre)
	}
	return b.String()
}
