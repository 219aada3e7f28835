/*
 * login.js -- the sign-in form for a broker that takes no anonymous
 * clients (the container's, or any broker opened to a network).  It is
 * shown when the broker refuses the connection as not authorised, hands
 * what was typed to the caller, and hides again.
 *
 * The password stays in this page's memory: nothing is stored, and a
 * reload asks again (the browser's password manager may fill it in).
 */

/* MQTT v5 reason codes 134 (bad user name or password) and 135 (not
 * authorised), and v3.1.1 return codes 4 and 5, as mqtt.js reports them. */
const REFUSED_LOGIN = new Set([4, 5, 134, 135]);

export function isRefusedLogin(err) {
  return REFUSED_LOGIN.has(err?.code);
}

export function createLoginForm(form, onCredentials) {
  const why = form.querySelector('.login-why');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    form.hidden = true;
    onCredentials({ username: data.get('username'), password: data.get('password') });
  });
  return {
    ask(message) {
      why.textContent = message;
      form.hidden = false;
      form.elements.username.focus();
    },
  };
}
