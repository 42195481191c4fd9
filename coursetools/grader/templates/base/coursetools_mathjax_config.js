// coursetools: the MathJax 2 settings of the feedback pages and the formgrader, read by MathJax.js
// when it loads (so no inline script is needed: the feedback's Content-Security-Policy allows none).
// The local MathJax (jupyter-server-mathjax) ships only the STIX-Web fonts, so the HTML-CSS output
// is told to use them instead of looking for TeX fonts it cannot find.
window.MathJax = {
    TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
    tex2jax: {
        inlineMath: [["$", "$"], ["\\(", "\\)"]],
        displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true,
        processEnvironments: true
    },
    displayAlign: "center",
    messageStyle: "none",
    "HTML-CSS": {
        availableFonts: [],
        preferredFont: null,
        webFont: "STIX-Web",
        imageFont: null,
        linebreaks: {automatic: true}
    },
    menuSettings: {locale: "en"}
};
