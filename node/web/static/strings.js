// The dashboard's languages. Every user-visible string is in
// /static/i18n/<code>.json (one file per language, keyed by message id;
// the regional brief reads the same files); this script picks the
// language (?lang=, then the choice remembered in localStorage, then the
// browser's languages, then English), loads its messages into
// window.RT_STRINGS, and formats numbers and dates for it with Intl.
"use strict";
(function () {
  const KEY = "roundtable.lang";
  const I = {
    code: "en",
    languages: [],

    // pick returns the first language of prefs that is available, by
    // exact code or by its first subtag ("sr-RS" → sr-Latn, "sq-AL" → sq).
    pick(prefs) {
      const codes = I.languages.map((l) => l.code);
      for (const p of prefs) {
        if (!p) continue;
        const exact = codes.find((c) => c.toLowerCase() === p.toLowerCase());
        if (exact) return exact;
        const base = codes.find((c) => c.split("-")[0] === p.split("-")[0].toLowerCase());
        if (base) return base;
      }
      return "en";
    },

    async load() {
      I.languages = await (await fetch("/static/i18n/languages.json")).json();
      const asked = new URLSearchParams(location.search).get("lang");
      I.code = I.pick([asked, localStorage.getItem(KEY), ...(navigator.languages || [])]);
      if (asked && I.code === asked) localStorage.setItem(KEY, asked);
      const resp = await fetch("/static/i18n/" + I.code + ".json");
      window.RT_STRINGS = await resp.json();
      document.documentElement.lang = I.code;
    },

    // choose remembers a language for the next visit.
    choose(code) {
      localStorage.setItem(KEY, code);
    },

    num(v, decimals) {
      const d = decimals || 0;
      return new Intl.NumberFormat(I.code, { minimumFractionDigits: d, maximumFractionDigits: d }).format(v);
    },

    time(d) {
      return new Intl.DateTimeFormat(I.code, { dateStyle: "long", timeStyle: "short" }).format(d);
    },
  };
  window.RT_I18N = I;
})();
