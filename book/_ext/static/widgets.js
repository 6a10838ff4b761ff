// Two fixes for widgets rendered from saved state by the Jupyter widget manager.

// 1. The widget manager typesets widget labels with MathJax 2's API (MathJax.Hub.Queue).
// The book serves MathJax 3, which has no Hub: map the call onto typesetPromise.
if (window.MathJax && window.MathJax.startup && !window.MathJax.Hub) {
  window.MathJax.Hub = {
    Queue: (...jobs) => {
      for (const job of jobs) {
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
          window.MathJax.startup.promise.then(() => window.MathJax.typesetPromise([job[2]]));
        }
      }
    },
  };
}

// 2. Figures inside a widget's output come without alt text. clean_pages.py wraps each
// widget view in an element carrying the alt text from its cell's metadata: apply it.
const describeWidgetFigures = () => {
  for (const image of document.querySelectorAll("[data-figure-alt] img:not([alt])")) {
    image.alt = image.closest("[data-figure-alt]").dataset.figureAlt;
  }
};
new MutationObserver(describeWidgetFigures).observe(document.documentElement, {
  childList: true,
  subtree: true,
});
