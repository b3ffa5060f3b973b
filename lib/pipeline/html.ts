// HTML escaping for the report: model outputs and metric names are untrusted text (a sampled response
// can be "<script>"), so everything interpolated into the page goes through escapeHtml.

/** Text safe inside HTML/SVG element content and double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}
