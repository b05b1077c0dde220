// Package benchtoken holds the claims of the OIDC access token the
// benchmarks verify: the Go benchmark of cold verification against
// golang-jwt (session/) and the "keycloak" case of bench/run.sh
// (bench/mint) read the same 20-odd claims.
package benchtoken

import "time"

// KeycloakClaims are the claims of an access token as Keycloak issues them
// (realm and client roles, scope, profile and email), expiring at exp.
func KeycloakClaims(now, exp time.Time) map[string]any {
	return map[string]any{
		"exp":                exp.Unix(),
		"iat":                now.Unix(),
		"auth_time":          now.Add(-time.Hour).Unix(),
		"jti":                "onrtro:7f3c1e2a-9b4d-4c6e-8f1a-2b3c4d5e6f70",
		"iss":                "https://sso.example.com/realms/acme",
		"aud":                []any{"account", "orders-api"},
		"sub":                "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
		"typ":                "Bearer",
		"azp":                "orders-web",
		"sid":                "9c8b7a6f-5e4d-4c3b-a291-8f7e6d5c4b3a",
		"acr":                "1",
		"allowed-origins":    []any{"https://orders.example.com"},
		"realm_access":       map[string]any{"roles": []any{"offline_access", "uma_authorization", "default-roles-acme", "orders-admin"}},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []any{"manage-account", "manage-account-links", "view-profile"}}, "orders-api": map[string]any{"roles": []any{"read", "write"}}},
		"scope":              "openid email profile",
		"email_verified":     true,
		"name":               "Ada Lovelace",
		"preferred_username": "ada",
		"given_name":         "Ada",
		"family_name":        "Lovelace",
		"email":              "ada@example.com",
	}
}
