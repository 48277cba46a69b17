// Package browser holds the whole-product test as a visitor meets it: headless Chromium loads a
// page that frontdoor serves over https:// with a certificate it obtained from an ACME CA
// (Pebble), and the page's Laravel Echo + pusher-js subscribe over wss:// on the same origin and
// receive an event published through the signed HTTP API. The package has tests only.
package browser
