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
      I.checkIntl();
    },

    // choose remembers a language for the next visit.
    choose(code) {
      localStorage.setItem(KEY, code);
    },

    // A browser may lack locale data for a language (Chromium has none
    // for sq, bs and mk and falls back to English separators), so Intl is
    // used only where it writes numbers and months as languages.json and
    // the messages say; otherwise those are used directly.
    numIntl: false,
    dateIntl: false,

    checkIntl() {
      I.numIntl = false;
      I.numIntl = new Intl.NumberFormat(I.code, { minimumFractionDigits: 1 }).format(12345.5) === I.fallbackNum(12345.5, 1) &&
        new Intl.NumberFormat(I.code).format(1234) === I.fallbackNum(1234, 0);
      const march = new Intl.DateTimeFormat(I.code, { month: "long", day: "numeric" }).format(new Date(2025, 2, 3));
      I.dateIntl = march.toLowerCase().includes(window.RT_STRINGS["month.3"].toLowerCase());
    },

    num(v, decimals) {
      const d = decimals || 0;
      if (I.numIntl) return new Intl.NumberFormat(I.code, { minimumFractionDigits: d, maximumFractionDigits: d }).format(v);
      return I.fallbackNum(v, d);
    },

    // fallbackNum writes v with languages.json's separators (CLDR's).
    fallbackNum(v, d) {
      const l = I.languages.find((x) => x.code === I.code);
      const [whole, frac] = Math.abs(v).toFixed(d).split(".");
      const grouped = whole.length < l.min_group ? whole : whole.replace(/\B(?=(\d{3})+(?!\d))/g, l.group);
      return (v < 0 && Number(Math.abs(v).toFixed(d)) !== 0 ? "-" : "") + grouped + (frac ? l.decimal + frac : "");
    },

    time(d) {
      if (I.dateIntl) return new Intl.DateTimeFormat(I.code, { dateStyle: "long", timeStyle: "short" }).format(d);
      const S = window.RT_STRINGS;
      const date = S["format.date"].replace("{day}", d.getDate()).replace("{month}", S["month." + (d.getMonth() + 1)]).replace("{year}", d.getFullYear());
      return date + " " + String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
    },
  };
  window.RT_I18N = I;
})();
