package test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/test/harness"
)

// deployDir is the repository's deploy/ seen from this package's directory,
// where go test runs.
const deployDir = "../deploy"

func promtool(t *testing.T) string { return harness.Program(t, "promtool") }

// run runs a command in dir and returns its combined output and error.
func run(dir string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPromtoolRules checks the alert rules (syntax, and their unit tests in
// avstation.rules_test.yml) and the scrape config, as an operator would
// before loading them.
func TestPromtoolRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "avstation.rules.yml"},
		{"test", "rules", "avstation.rules_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		out, err := run(dir, nil, pt, args...)
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// ruleMetricNames are the avmilter_ and avstation_ metrics an alert rule uses.
func ruleMetricNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "avstation.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range regexp.MustCompile(`\bav(milter|station)_[a-z_]+`).FindAllString(r.Expr, -1) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

// TestPromtoolMetrics runs a clean and an infected posting through Postfix,
// avmilter, avstation and clamd, then lints both daemons' /metrics with
// promtool and checks that the counters say what happened.
func TestPromtoolMetrics(t *testing.T) {
	pt := promtool(t)
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "metrics-lint-word")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{
		Station: "http://" + station.Addr, Secret: secret, Metrics: true,
	}))

	wantCode(t, c.send(t, listRcp, "metrics: clean posting"), 250)
	c.delivered(t, "metrics: clean posting")
	wantCode(t, c.send(t, listRcp, "metrics: infected posting", eicarAttachment()), 550, "5.7.1")

	milterURL := "http://" + c.milter.MetricsAddr + "/metrics"
	stationURL := "http://" + station.Addr + "/metrics"
	want := []struct {
		url, name string
		labels    map[string]string
		value     float64
	}{
		{milterURL, "avmilter_messages_total", map[string]string{"outcome": "clean", "action": "accept"}, 1},
		{milterURL, "avmilter_messages_total", map[string]string{"outcome": "infected", "action": "reject"}, 1},
		{milterURL, "avmilter_messages_total", map[string]string{"outcome": "station-failure", "action": "tempfail"}, 0},
		{milterURL, "avmilter_scan_duration_seconds_count", nil, 2},
		{stationURL, "avstation_jobs_total", map[string]string{"status": "clean"}, 1},
		{stationURL, "avstation_jobs_total", map[string]string{"status": "infected"}, 1},
		{stationURL, "avstation_jobs_total", map[string]string{"status": "error"}, 0},
		{stationURL, "avstation_clamd_up", map[string]string{"addr": clamd.Addr}, 1},
	}
	// Both decisions were counted before Postfix answered; poll briefly all
	// the same, so that a slow scrape is not a false failure.
	var texts map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		texts = map[string]string{milterURL: fetchMetrics(t, milterURL), stationURL: fetchMetrics(t, stationURL)}
		var wrong []string
		for _, w := range want {
			got, ok := metricValue(texts[w.url], w.name, w.labels)
			if !ok || got != w.value {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value))
			}
		}
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not match what was sent:\n  %s\navmilter:\n%s\navstation:\n%s",
				strings.Join(wrong, "\n  "), grep(texts[milterURL], "avmilter_"), grep(texts[stationURL], "avstation_"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, src := range []struct{ daemon, url string }{{"avmilter", milterURL}, {"avstation", stationURL}} {
		// promtool check metrics reads the exposition on stdin and exits
		// non-zero on a parse error or a lint problem (a name, a unit, a
		// missing HELP), printing each.
		out, err := run("", strings.NewReader(texts[src.url]), pt, "check", "metrics")
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("promtool check metrics on %s's %s: %v\n%s", src.daemon, src.url, err, out)
		} else {
			t.Logf("promtool check metrics on %s's /metrics: no problem", src.daemon)
		}
	}

	// Every daemon metric an alert rule uses or README documents exists, so
	// that a renamed metric cannot leave an alert silently watching nothing.
	// Label values are pre-set, so only a metric the daemon may leave out by
	// design is excused, and an excuse that no longer holds is an error too.
	mayBeAbsent := map[string]string{
		"avstation_signature_age_seconds": "only when the engine gives its database's build time; the test clamd's own signature file has none",
	}
	all := texts[milterURL] + texts[stationURL]
	exposed := func(name string) bool {
		return strings.Contains(all, "\n# TYPE "+name+" ") || strings.HasPrefix(all, "# TYPE "+name+" ")
	}
	for name, why := range mayBeAbsent {
		if exposed(name) {
			t.Errorf("%s is excused as absent (%s), but is exposed: remove the excuse", name, why)
		}
	}
	names := ruleMetricNames(t)
	for _, n := range readmeMetricNames(t) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, name := range names {
		if exposed(name) {
			continue
		}
		if why, ok := mayBeAbsent[name]; ok {
			t.Logf("%s is not in /metrics: %s", name, why)
			continue
		}
		t.Errorf("%s is used by an alert rule or documented in README, but neither daemon exposes it", name)
	}
}

// readmeMetricNames are the metrics README's "Metrics" item documents.
func readmeMetricNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, item, ok := strings.Cut(string(b), "\n- **Metrics**:")
	if !ok {
		t.Fatal(`README.md has no "- **Metrics**:" item`)
	}
	item, _, _ = strings.Cut(item, "\n- ")
	var names []string
	for _, n := range regexp.MustCompile("`(av(milter|station)_[a-z_]+)").FindAllStringSubmatch(item, -1) {
		if !slices.Contains(names, n[1]) {
			names = append(names, n[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("README's Metrics item names %d metrics: %v; has its form changed?", len(names), names)
	}
	return names
}

func fetchMetrics(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// metricValue finds the sample of name whose labels include every pair of
// labels in the text exposition format, e.g. avmilter_messages_total{action="accept",outcome="clean"} 1.
func metricValue(text, name string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		got := map[string]string{}
		if rest[0] == '{' {
			var ok bool
			if got, rest, ok = parseLabels(rest[1:]); !ok {
				continue
			}
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		return v, err == nil
	}
	return 0, false
}

// parseLabels reads name="value" pairs up to the closing brace.
func parseLabels(s string) (map[string]string, string, bool) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			return labels, rest, true
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, "", false
		}
		// The value ends at the first quote not escaped by a backslash.
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			return nil, "", false
		}
		v, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return nil, "", false
		}
		labels[name] = v
		s = rest[end+1:]
	}
}

// TestDeployYAMLParses reads every YAML file under deploy/, each document of
// each, and checks that the Kubernetes manifests fit together (kubectl is
// not on CI machines) and that the station config they ship is valid.
func TestDeployYAMLParses(t *testing.T) {
	docs := map[string][]map[string]any{}
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		for i := 0; ; i++ {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s: document %d: %v", path, i+1, err)
				break
			}
			docs[path] = append(docs[path], doc)
		}
		if len(docs[path]) == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d YAML files parsed", len(docs))

	k8s := map[string]map[string]any{} // kind/name -> object
	for path, ds := range docs {
		if filepath.Base(filepath.Dir(path)) != "kubernetes" || filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		for _, d := range ds {
			kind, _ := d["kind"].(string)
			api, _ := d["apiVersion"].(string)
			name, _ := dig(d, "metadata", "name").(string)
			if kind == "" || api == "" || name == "" {
				t.Errorf("%s: a manifest without apiVersion, kind or metadata.name", path)
				continue
			}
			if dig(d, "metadata", "namespace") != nil {
				t.Errorf("%s: %s/%s sets a namespace; the manifests are namespace-less (kubectl apply -n)", path, kind, name)
			}
			k8s[kind+"/"+name] = d
		}
	}
	checkKubernetes(t, k8s, docs[filepath.Join(deployDir, "kubernetes", "kustomization.yaml")])
}

// dig walks maps by key and lists by index.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func checkKubernetes(t *testing.T, objs map[string]map[string]any, kustomization []map[string]any) {
	t.Helper()
	for _, want := range []string{"Deployment/avstation", "Service/avstation", "HorizontalPodAutoscaler/avstation",
		"ConfigMap/avstation-config", "Secret/avstation-secret", "PodDisruptionBudget/avstation"} {
		if objs[want] == nil {
			t.Fatalf("deploy/kubernetes has no %s", want)
		}
	}
	dep := objs["Deployment/avstation"]
	podLabels, _ := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	selects := func(what string, sel any) {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%v, which the Deployment's pods do not have (%v)", what, k, v, podLabels)
			}
		}
	}
	selects("Deployment", dig(dep, "spec", "selector", "matchLabels"))
	selects("Service", dig(objs["Service/avstation"], "spec", "selector"))
	selects("PodDisruptionBudget", dig(objs["PodDisruptionBudget/avstation"], "spec", "selector", "matchLabels"))

	if dig(objs["HorizontalPodAutoscaler/avstation"], "apiVersion") != "autoscaling/v2" ||
		dig(objs["HorizontalPodAutoscaler/avstation"], "spec", "scaleTargetRef", "name") != "avstation" ||
		dig(objs["HorizontalPodAutoscaler/avstation"], "spec", "metrics", 0, "resource", "target", "averageUtilization") != 70 {
		t.Errorf("HPA is not autoscaling/v2 on the avstation Deployment at 70%% CPU: %v", objs["HorizontalPodAutoscaler/avstation"]["spec"])
	}
	svcPort := dig(objs["Service/avstation"], "spec", "ports", 0)
	if dig(svcPort, "port") != 7358 || dig(objs["Service/avstation"], "spec", "type") != "ClusterIP" {
		t.Errorf("Service is not ClusterIP on 7358: %v", svcPort)
	}

	pod := dig(dep, "spec", "template", "spec")
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("pod securityContext.runAsNonRoot is not true")
	}
	volumes := map[string]any{}
	for _, v := range asList(dig(pod, "volumes")) {
		volumes[dig(v, "name").(string)] = v
	}
	// Volumes refer to the ConfigMap and Secret that are shipped.
	if n := dig(volumes["config"], "configMap", "name"); objs["ConfigMap/"+fmt.Sprint(n)] == nil {
		t.Errorf("config volume names ConfigMap %v, not shipped", n)
	}
	if n := dig(volumes["secret-src"], "secret", "secretName"); objs["Secret/"+fmt.Sprint(n)] == nil {
		t.Errorf("secret volume names Secret %v, not shipped", n)
	}
	if _, ok := dig(objs["Secret/avstation-secret"], "stringData", "secret").(string); !ok {
		t.Errorf("Secret has no stringData.secret")
	}
	containers := map[string]any{}
	for _, c := range append(asList(dig(pod, "initContainers")), asList(dig(pod, "containers"))...) {
		name := dig(c, "name").(string)
		containers[name] = c
		for _, m := range asList(dig(c, "volumeMounts")) {
			if volumes[fmt.Sprint(dig(m, "name"))] == nil {
				t.Errorf("container %s mounts volume %v, which the pod does not have", name, dig(m, "name"))
			}
		}
		if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("container %s: root filesystem not read-only or privilege escalation allowed", name)
		}
		if dig(c, "resources", "requests") == nil {
			t.Errorf("container %s has no resource requests (the HPA needs them)", name)
		}
	}
	st := containers["avstation"]
	if st == nil || containers["clamd"] == nil {
		t.Fatalf("the pod lacks the avstation or the clamd container: %v", containers)
	}
	if dig(st, "readinessProbe", "httpGet", "path") != "/readyz" || dig(st, "readinessProbe", "httpGet", "port") != dig(svcPort, "targetPort") ||
		dig(st, "ports", 0, "name") != dig(svcPort, "targetPort") || dig(st, "ports", 0, "containerPort") != 7358 {
		t.Errorf("avstation's port, readiness probe on /readyz and the Service's targetPort do not meet: %v", st)
	}

	// The shipped station config is valid, and the secret file it names is
	// where the init container puts it.
	cfg, _ := dig(objs["ConfigMap/avstation-config"], "data", "avstation.yaml").(string)
	var sc struct {
		SecretFile string `yaml:"secret_file"`
		SpoolDir   string `yaml:"spool_dir"`
		Scanner    struct {
			Clamd []string `yaml:"clamd"`
		} `yaml:"scanner"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &sc); err != nil {
		t.Fatalf("ConfigMap avstation.yaml: %v", err)
	}
	if !slices.Equal(sc.Scanner.Clamd, []string{"tcp:127.0.0.1:3310"}) {
		t.Errorf("ConfigMap avstation.yaml: scanner.clamd = %v, want the sidecar tcp:127.0.0.1:3310", sc.Scanner.Clamd)
	}
	// The root filesystem is read-only: records_dir's default must be on a
	// volume.
	var stateMounted bool
	for _, m := range asList(dig(st, "volumeMounts")) {
		mp := fmt.Sprint(dig(m, "mountPath"))
		stateMounted = stateMounted || strings.HasPrefix(config.DefaultRecordsDir, strings.TrimSuffix(mp, "/")+"/")
	}
	if !stateMounted {
		t.Errorf("avstation mounts no volume over %s (records_dir's default) under its read-only root", config.DefaultRecordsDir)
	}
	initCmd := fmt.Sprint(dig(containers["secret-file"], "command"))
	if !strings.Contains(initCmd, sc.SecretFile) || !strings.Contains(initCmd, "chmod 0400") {
		t.Errorf("the init container does not write %s with mode 0400: %s", sc.SecretFile, initCmd)
	}
	dir := t.TempDir()
	secret := harness.WriteSecret(t, "k8s-config-check")
	text := strings.ReplaceAll(cfg, sc.SecretFile, secret)
	text = strings.ReplaceAll(text, sc.SpoolDir, filepath.Join(dir, "spool"))
	path := filepath.Join(dir, "avstation.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("", nil, bin.Station, "check-config", "-config", path); err != nil {
		t.Errorf("avstation check-config on the ConfigMap's avstation.yaml: %v\n%s", err, out)
	}

	// kustomization.yaml lists files that exist.
	for _, k := range kustomization {
		for _, r := range asList(k["resources"]) {
			if _, err := os.Stat(filepath.Join(deployDir, "kubernetes", fmt.Sprint(r))); err != nil {
				t.Errorf("kustomization.yaml: %v", err)
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestDeploySystemdUnits checks the units with systemd-analyze (verify: the
// syntax, every directive known, the binary there; security: the exposure
// score), and creates their users and directories in a scratch root.
func TestDeploySystemdUnits(t *testing.T) {
	sa := harness.Program(t, "systemd-analyze")
	dir := t.TempDir()
	var units []string
	stateDefault := map[string]string{"avmilter": config.DefaultActivityDir, "avstation": config.DefaultRecordsDir}
	for name, binary := range map[string]string{"avmilter": bin.Milter, "avstation": bin.Station} {
		b, err := os.ReadFile(filepath.Join(deployDir, "systemd", name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		// ProtectSystem=strict: the default forensics directory must be in
		// the unit's writable state directory.
		if !bytes.Contains(b, []byte("\nStateDirectory="+name+"\n")) || !strings.HasPrefix(stateDefault[name], "/var/lib/"+name+"/") {
			t.Errorf("%s.service: StateDirectory=%s does not hold the default %s", name, name, stateDefault[name])
		}
		start := "ExecStart=/usr/local/sbin/" + name + " "
		if !bytes.Contains(b, []byte("\n"+start)) {
			t.Fatalf("%s.service does not start /usr/local/sbin/%s", name, name)
		}
		// verify checks that ExecStart's binary exists: use the one just built.
		b = bytes.ReplaceAll(b, []byte(start), []byte("ExecStart="+binary+" "))
		p := filepath.Join(dir, name+".service")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	// verify exits 0 on unknown directives and bad values, which it only
	// prints: any output is a failure.
	if out, err := run(dir, nil, sa, append([]string{"verify"}, units...)...); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --threshold is on the 0-100 scale of which the report shows a tenth:
	// 20 is an exposure of 2.0 (they score 1.4).
	out, err := run(dir, nil, sa, append([]string{"security", "--offline=yes", "--threshold=20", "--no-pager"}, units...)...)
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Overall exposure") {
			t.Log(strings.TrimSpace(line))
		}
	}

	// sysusers.d and tmpfiles.d in a scratch root that has the host's users
	// and groups (root, adm).
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Absolute: with --root, relative paths would be taken inside root.
	systemdDir, err := filepath.Abs(filepath.Join(deployDir, "systemd"))
	if err != nil {
		t.Fatal(err)
	}
	sysusers, _ := filepath.Glob(filepath.Join(systemdDir, "sysusers.d", "*.conf"))
	tmpfiles, _ := filepath.Glob(filepath.Join(systemdDir, "tmpfiles.d", "*.conf"))
	if len(sysusers) != 2 || len(tmpfiles) != 2 {
		t.Fatalf("want sysusers.d and tmpfiles.d files for both daemons, have %v %v", sysusers, tmpfiles)
	}
	if out, err := run("", nil, harness.Program(t, "systemd-sysusers"), append([]string{"--root=" + root}, sysusers...)...); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	if out, err := run("", nil, harness.Program(t, "systemd-tmpfiles"), append([]string{"--root=" + root, "--create"}, tmpfiles...)...); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	for path, mode := range map[string]fs.FileMode{
		"var/spool/avmilter":              fs.ModeDir | 0o700,
		"var/spool/avmilter/quarantine":   fs.ModeDir | 0o700,
		"var/spool/avstation":             fs.ModeDir | 0o700,
		"var/log/avstation/avmilter.log":  0o640,
		"var/log/avstation/avstation.log": 0o640,
		"var/log/avstation":               fs.ModeDir | 0o755,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("tmpfiles.d: %v", err)
		} else if fi.Mode() != mode {
			t.Errorf("tmpfiles.d: /%s has mode %v, want %v", path, fi.Mode(), mode)
		}
	}
}

// TestDeployPostfixMasterCF parses the master.cf snippet with postconf,
// which warns about any -o parameter Postfix does not know, and checks that
// the notice listener keeps the milters: every local process can reach it,
// so without them it would be a way onto the lists unscanned (avmilter
// recognises its own notices by their signed mark instead).
func TestDeployPostfixMasterCF(t *testing.T) {
	postconf := harness.Program(t, "postconf")
	dir := t.TempDir()
	for _, f := range []string{"main.cf", "master.cf"} {
		b, err := os.ReadFile(filepath.Join(deployDir, "postfix", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run("", nil, postconf, "-c", dir, "-P")
	if err != nil || strings.Contains(out, "warning") {
		t.Fatalf("postconf -P: %v\n%s", err, out)
	}
	if !strings.Contains(out, "127.0.0.1:10026/inet/syslog_name = postfix/avnotice\n") {
		t.Fatalf("master.cf: no notice listener on 127.0.0.1:10026 in:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		name, value, _ := strings.Cut(strings.TrimPrefix(line, "127.0.0.1:10026/inet/"), "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !strings.HasPrefix(line, "127.0.0.1:10026/inet/"):
		case name == "smtpd_milters" || name == "non_smtpd_milters" || name == "milter_default_action":
			t.Errorf("master.cf: the notice listener overrides %s (%q): it must run avmilter like any other smtpd", name, value)
		case name == "receive_override_options" && strings.Contains(value, "no_milters"):
			t.Errorf("master.cf: the notice listener sets receive_override_options=%s: no_milters turns avmilter off for every local process", value)
		}
	}
}
