// A Go receiver of twisted_hooks deliveries:
//
//	go get github.com/standard-webhooks/standard-webhooks/libraries/go
//	WEBHOOK_SECRET=whsec_... go run .
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"os"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	secret := os.Getenv("WEBHOOK_SECRET") // the subscription's secret, whsec_...
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		log.Fatalf("WEBHOOK_SECRET: %v", err)
	}
	http.HandleFunc("/webhooks/orders", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		// The raw bytes, as received: decode the JSON only once they are verified.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil { // checks the timestamp too
			http.Error(w, "invalid signature", http.StatusBadRequest)
			return
		}
		log.Printf("%s: %s", r.Header.Get("Hook-Event"), body)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:3000", nil))
}

// hookHMACValid is Thorn's check, for receivers written for Thorn: base64 of the HMAC-SHA256
// of the raw body, keyed with the secret's text ("whsec_" included). It has no timestamp:
// prefer wh.Verify.
func hookHMACValid(body []byte, header, secret string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	expected := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(expected), []byte(header))
}
