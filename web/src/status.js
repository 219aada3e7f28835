/*
 * status.js -- the banner that says what the page is doing, one state at a
 * time, in data-state for scripts and in words for people:
 *   connecting   first attempt to reach the broker
 *   live         connected, answers in, live updates flowing
 *   unreachable  the broker cannot be reached or the connection dropped;
 *                the values shown are the last ones seen, and we retry
 *   login        the broker refused the user and password (or wants some):
 *                the sign-in form is shown, nothing is retried until sent
 *   query-error  connected, but a history request failed (code + message)
 *   config-error the page's URL parameters are wrong; nothing to retry
 */

export function createStatusBanner(el) {
  function show(state, text) {
    el.dataset.state = state;
    el.textContent = text;
  }
  return {
    connecting: (url) => show('connecting', `Connecting to ${url}…`),
    live: (url) => show('live', `Live: ${url}`),
    unreachable: (url, why) =>
      show('unreachable', `Broker unreachable at ${url}${why ? ` (${why})` : ''}. Retrying…`),
    login: (url, why) => show('login', `Sign in to ${url} (${why})`),
    queryError: (what, err) => show('query-error', `Query error (${what}): ${err.code}: ${err.message}`),
    configError: (message) => show('config-error', `Configuration error: ${message}`),
    state: () => el.dataset.state,
  };
}
