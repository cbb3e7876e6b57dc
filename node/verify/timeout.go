package verify

// RequestTimeout bounds each request of a verification; a caller that
// sets Options.HTTPClient (for a CA of its own, say) should use it too.
const RequestTimeout = defaultTimeout
