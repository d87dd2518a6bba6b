// The Hindi link re-opens the same widget with Hindi UI strings: the
// config-call way of setting it up, beside the data attributes of index.html.
addEventListener('DOMContentLoaded', function () {
  if (new URLSearchParams(location.search).get('lang') === 'hi' && window.Leadchat) {
    window.Leadchat.init({ lang: 'hi', bot: 'GreenCycle सहायक' });
  }
});
