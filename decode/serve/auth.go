package serve

import "net/http"

// withAuth puts h behind the server's API keys (Config.Keys; h itself
// when there are none): every route but the health checks needs
// "Authorization: Bearer <key>" (what OpenAI clients send as apiKey),
// else a 401 in OpenAI's error shape, code invalid_api_key. The log line
// of a refusal never holds the key.
func (s *Server) withAuth(h http.Handler) http.Handler {
	public := func(r *http.Request) bool {
		return (r.URL.Path == "/healthz" || r.URL.Path == "/v1/healthz") && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	}
	deny := func(w http.ResponseWriter, r *http.Request, msg string) {
		code := "invalid_api_key"
		writeError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Message: msg, Code: &code})
	}
	return s.cfg.Keys.Middleware(h, public, deny, s.logf)
}
