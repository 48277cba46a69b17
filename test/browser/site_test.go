//go:build linux

package browser

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Laravel-shaped page of the HTTP/2 tests and the pageload benchmark: public/page.html (as
// Blade renders it with @vite) referencing 40 hashed assets under public/build/assets, as
// `vite build` lays them out: 16 JS chunks, 8 CSS files, 4 fonts, 12 images. Contents are
// deterministic (seeded), so every server and every run serves the same bytes.

const assetCount = 40

// siteAssets are the 40 asset paths under public/, in the order the page references them.
type siteAssets []string

// writeLaravelSite writes public/ into root. With echo, the page also loads pusher-js and
// Laravel Echo (copied from test/e2e/node_modules by the caller) and subscribes as the browser
// test's page does; without, it is the benchmark's page: assets only.
func writeLaravelSite(t testing.TB, root string, echo bool) siteAssets {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(21, 1))
	var assets siteAssets
	write := func(rel string, b []byte) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:4]) }
	filler := func(n int) string { // minified-looking text, compressible as real bundles are
		const words = "function return const let this props state render export default import from "
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[rng.IntN(60):][:10])
		}
		return sb.String()
	}
	add := func(name, ext string, b []byte) {
		rel := "build/assets/" + name + "-" + hash(b) + "." + ext
		write(rel, b)
		assets = append(assets, rel)
	}
	for i := range 16 {
		js := fmt.Sprintf("window.__chunks=(window.__chunks||0)+1;/*%s*/\n", filler(4000+rng.IntN(30000)))
		add(fmt.Sprintf("chunk%d", i), "js", []byte(js))
	}
	for i := range 8 {
		css := fmt.Sprintf(".c%d{color:#%06x}/*%s*/\n", i, rng.IntN(1<<24), filler(3000+rng.IntN(12000)))
		add(fmt.Sprintf("app%d", i), "css", []byte(css))
	}
	for i := range 4 {
		font := make([]byte, 15000+rng.IntN(20000))
		for j := range font {
			font[j] = byte(rng.UintN(256))
		}
		add(fmt.Sprintf("inter%d", i), "woff2", font)
	}
	for i := range 12 {
		img := image.NewRGBA(image.Rect(0, 0, 48, 48))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = byte(rng.UintN(256)), byte(i*20), 128, 255
		}
		img.Set(0, 0, color.Black)
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("hero%d", i), "png", b.Bytes())
	}
	if len(assets) != assetCount {
		t.Fatalf("%d assets, want %d", len(assets), assetCount)
	}

	var head, body strings.Builder
	for _, a := range assets {
		switch {
		case strings.HasSuffix(a, ".css"):
			fmt.Fprintf(&head, "<link rel=\"stylesheet\" href=\"/%s\">\n", a)
		case strings.HasSuffix(a, ".js"):
			fmt.Fprintf(&head, "<script type=\"module\" src=\"/%s\"></script>\n", a)
		case strings.HasSuffix(a, ".woff2"):
			fmt.Fprintf(&head, "<link rel=\"preload\" as=\"font\" type=\"font/woff2\" crossorigin href=\"/%s\">\n", a)
		default:
			fmt.Fprintf(&body, "<img src=\"/%s\" width=\"48\" height=\"48\" alt=\"\">\n", a)
		}
	}
	echoScripts := ""
	if echo {
		echoScripts = echoPageScript
	}
	page := fmt.Sprintf(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>frontdoor pageload</title>
%s%s</head>
<body>
<h1>Dashboard</h1>
%s</body>
</html>
`, head.String(), echoScripts, body.String())
	write("page.html", []byte(page))
	return assets
}

// echoPageScript is testdata/page.html's socket part: Echo for Reverb on this origin, its state
// in window.__state.
const echoPageScript = `<script>
  window.__state = { phase: 'loading', received: [], errors: [] };
  window.addEventListener('error', (e) => window.__state.errors.push(String(e.message)));
</script>
<script src="/pusher.min.js"></script>
<script src="/echo.iife.js"></script>
<script>
  const echo = new Echo.default({
    broadcaster: 'reverb', key: 'browser-key',
    wsHost: location.hostname, wsPort: Number(location.port || 443), wssPort: Number(location.port || 443),
    forceTLS: true, enabledTransports: ['ws', 'wss'],
  });
  const state = window.__state;
  state.phase = 'connecting';
  echo.channel('orders')
    .subscribed(() => { state.phase = 'subscribed'; })
    .error((e) => state.errors.push(JSON.stringify(e)))
    .listen('.order.shipped', (e) => state.received.push(e));
</script>
`

// siteCert writes a self-signed certificate for site (the test's own, trusted by Chromium through
// its SPKI hash) and returns the two PEM files and the hash for --ignore-certificate-errors-spki-list.
func siteCert(t testing.TB, dir string) (certFile, keyFile, spki string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: site},
		DNSNames:     []string{site},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return certFile, keyFile, base64.StdEncoding.EncodeToString(sum[:])
}
