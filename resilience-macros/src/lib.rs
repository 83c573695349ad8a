//! `#[chaos_test]`: a test that runs with one chaos scenario active, ended when the test ends,
//! also when it panics. Use it as `resilience_control::chaos_test`; the documentation is there.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Error, Expr, FnArg, ItemFn, LitFloat, LitInt, LitStr, Type};

/// See `resilience_control::chaos_test`.
#[proc_macro_attribute]
pub fn chaos_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut spec = Spec::default();
    let parser = syn::meta::parser(|meta| spec.parse(meta));
    syn::parse_macro_input!(attr with parser);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand(spec, function)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// The one fault a test injects.
enum Fault {
    Latency(u64),
    Timeout(u64),
    Errors(f64),
    Partition,
    ForceOpen,
}

/// What the attribute says.
#[derive(Default)]
struct Spec {
    target: Option<LitStr>,
    fault: Option<Fault>,
    code: Option<u16>,
    duration: Option<proc_macro2::TokenStream>,
    rate: Option<f64>,
    harness: Option<Expr>,
    flavor: Option<LitStr>,
}

const KEYS: &str = "target, latency, errors, code, timeout, partition, force_open, duration, rate, harness, flavor";

impl Spec {
    fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("expected one of {KEYS}")));
        };
        let span = meta.path.span();
        match key.as_str() {
            "target" => {
                let target: LitStr = meta.value()?.parse()?;
                if target.value().is_empty() {
                    return Err(Error::new(target.span(), "`target` must not be empty"));
                }
                self.target = Some(target);
            }
            "latency" => {
                let delay = duration_nanos(&meta.value()?.parse()?, "latency")?;
                self.set_fault(span, Fault::Latency(delay))?;
            }
            "timeout" => {
                let after = duration_nanos(&meta.value()?.parse()?, "timeout")?;
                self.set_fault(span, Fault::Timeout(after))?;
            }
            "errors" => {
                let rate = share(&meta.value()?.parse()?, "errors")?;
                self.set_fault(span, Fault::Errors(rate))?;
            }
            "code" => {
                let code: LitInt = meta.value()?.parse()?;
                self.code = Some(code.base10_parse().map_err(|_| {
                    Error::new(code.span(), format!("`code` = {code}: expected 0 to 65535"))
                })?);
            }
            "partition" => self.set_fault(span, Fault::Partition)?,
            "force_open" => self.set_fault(span, Fault::ForceOpen)?,
            "duration" => {
                let nanos = duration_nanos(&meta.value()?.parse()?, "duration")?;
                self.duration = Some(quote!(::std::time::Duration::from_nanos(#nanos)));
            }
            "rate" => self.rate = Some(share(&meta.value()?.parse()?, "rate")?),
            "harness" => self.harness = Some(meta.value()?.parse()?),
            "flavor" => {
                let flavor: LitStr = meta.value()?.parse()?;
                if !matches!(flavor.value().as_str(), "current_thread" | "multi_thread") {
                    return Err(Error::new(
                        flavor.span(),
                        format!(
                            "`flavor` = {:?}: expected \"current_thread\" or \"multi_thread\"",
                            flavor.value()
                        ),
                    ));
                }
                self.flavor = Some(flavor);
            }
            other => {
                return Err(Error::new(
                    span,
                    format!("unknown #[chaos_test] key `{other}`: expected one of {KEYS}"),
                ));
            }
        }
        Ok(())
    }

    fn set_fault(&mut self, span: Span, fault: Fault) -> syn::Result<()> {
        if self.fault.is_some() {
            return Err(Error::new(
                span,
                "one fault per #[chaos_test]: latency, errors, timeout, partition or force_open",
            ));
        }
        self.fault = Some(fault);
        Ok(())
    }
}

/// A duration literal (`"100ms"`, `"2s"`) in nanoseconds, checked at compile time.
fn duration_nanos(text: &LitStr, key: &str) -> syn::Result<u64> {
    let duration = humantime::parse_duration(&text.value()).map_err(|e| {
        Error::new(
            text.span(),
            format!("`{key}` = {:?}: {e} (e.g. \"100ms\", \"2s\")", text.value()),
        )
    })?;
    u64::try_from(duration.as_nanos()).map_err(|_| {
        Error::new(
            text.span(),
            format!("`{key}` = {:?}: too long", text.value()),
        )
    })
}

/// A share in [0, 1], from a float or integer literal.
fn share(value: &Expr, key: &str) -> syn::Result<f64> {
    let parsed = match value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(f),
            ..
        }) => parse_float(f),
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(Error::new(
            value.span(),
            format!(
                "`{key}` = {}: expected a share in [0, 1], e.g. 0.5",
                quote!(#value)
            ),
        )),
    }
}

fn parse_float(f: &LitFloat) -> Option<f64> {
    f.base10_parse().ok()
}

fn expand(spec: Spec, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let Some(target) = spec.target else {
        return Err(Error::new(
            sig.ident.span(),
            "#[chaos_test] needs `target = \"...\"`: the chaos point or breaker it hits",
        ));
    };
    let Some(fault) = spec.fault else {
        return Err(Error::new(
            sig.ident.span(),
            "#[chaos_test] needs a fault: latency = \"100ms\", errors = 0.5, timeout = \"2s\", partition or force_open",
        ));
    };
    let fault = match (fault, spec.code) {
        (Fault::Errors(rate), code) => {
            let code = code.unwrap_or(503);
            quote!(Errors { rate: #rate, code: #code })
        }
        (_, Some(_)) => {
            return Err(Error::new(
                sig.ident.span(),
                "`code` goes with `errors = <share>`",
            ));
        }
        (Fault::Latency(nanos), None) => quote!(Latency(::std::time::Duration::from_nanos(#nanos))),
        (Fault::Timeout(nanos), None) => {
            quote!(Timeouts(::std::time::Duration::from_nanos(#nanos)))
        }
        (Fault::Partition, None) => quote!(Partition),
        (Fault::ForceOpen, None) => quote!(ForceOpen),
    };
    if sig.inputs.len() > 1 {
        return Err(Error::new(
            sig.inputs.span(),
            "a #[chaos_test] takes no argument, or one: the `ChaosHarness` (by value or by reference)",
        ));
    }
    let binding = match sig.inputs.first() {
        None => quote!(),
        Some(FnArg::Typed(arg)) => {
            let (pat, ty) = (&arg.pat, &arg.ty);
            match &**ty {
                Type::Reference(_) => quote!(let #pat: #ty = &__chaos_harness;),
                _ => quote!(let #pat: #ty = ::std::clone::Clone::clone(&__chaos_harness);),
            }
        }
        Some(receiver) => {
            return Err(Error::new(
                receiver.span(),
                "a #[chaos_test] is a free function",
            ));
        }
    };
    let name = &sig.ident;
    let output = &sig.output;
    let harness = match spec.harness {
        Some(expr) => quote!(#expr),
        None => quote!(::resilience_control::chaos::ChaosHarness::new()),
    };
    let duration = match spec.duration {
        Some(d) => quote!(::std::option::Option::Some(#d)),
        None => quote!(::std::option::Option::None),
    };
    let rate = match spec.rate {
        Some(r) => quote!(::std::option::Option::Some(#r)),
        None => quote!(::std::option::Option::None),
    };
    let test_attr = if sig.asyncness.is_some() {
        let flavor = spec
            .flavor
            .map(|f| quote!(, flavor = #f))
            .unwrap_or_default();
        quote!(#[::resilience_control::__private::tokio::test(crate = "::resilience_control::__private::tokio" #flavor)])
    } else {
        if let Some(flavor) = spec.flavor {
            return Err(Error::new(flavor.span(), "`flavor` is for async tests"));
        }
        quote!(#[::core::prelude::v1::test])
    };
    let asyncness = &sig.asyncness;
    let scenario = format!("chaos_test:{name}");
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #asyncness fn #name() #output {
            let __chaos_harness: ::resilience_control::chaos::ChaosHarness = #harness;
            // Dropped when the test returns or unwinds: the scenario never outlives the test.
            let __chaos_scenario = __chaos_harness
                .start_test_scenario(
                    ::resilience_control::chaos::TestFault::#fault,
                    #target,
                    #scenario,
                    #duration,
                    #rate,
                )
                .unwrap_or_else(|refused| {
                    ::std::panic!("#[chaos_test] could not start {}: {}", #scenario, refused)
                });
            #binding
            #block
        }
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::parse::Parser;

    use super::{Spec, expand};

    /// The expansion's error for `attr` on `item`, or `None` when it expands.
    fn error(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Option<String> {
        let mut spec = Spec::default();
        let parsed = syn::meta::parser(|meta| spec.parse(meta)).parse2(attr);
        if let Err(err) = parsed {
            return Some(err.to_string());
        }
        let function = syn::parse2(item).ok()?;
        expand(spec, function).err().map(|e| e.to_string())
    }

    fn on_a_test(attr: proc_macro2::TokenStream) -> Option<String> {
        error(
            attr,
            quote!(
                async fn t(chaos: ChaosHarness) {}
            ),
        )
    }

    #[test]
    fn good_attributes_expand() {
        for attr in [
            quote!(latency = "100ms", target = "payments"),
            quote!(
                errors = 0.5,
                code = 503,
                target = "db",
                duration = "5s",
                rate = 1
            ),
            quote!(timeout = "2s", target = "db", flavor = "multi_thread"),
            quote!(partition, target = "db", harness = my::harness()),
            quote!(force_open, target = "db"),
        ] {
            assert_eq!(on_a_test(attr.clone()), None, "{attr}");
        }
    }

    #[test]
    fn mistakes_are_compile_errors_naming_the_key_and_value() {
        for (attr, says) in [
            (
                quote!(latncy = "100ms", target = "db"),
                "unknown #[chaos_test] key `latncy`",
            ),
            (
                quote!(latency = "100 parsecs", target = "db"),
                "`latency` = \"100 parsecs\"",
            ),
            (
                quote!(errors = 1.5, target = "db"),
                "`errors` = 1.5: expected a share in [0, 1]",
            ),
            (quote!(partition, rate = 2, target = "db"), "`rate` = 2"),
            (
                quote!(latency = "1s", partition, target = "db"),
                "one fault per #[chaos_test]",
            ),
            (quote!(latency = "1s"), "needs `target"),
            (quote!(target = "db"), "needs a fault"),
            (
                quote!(partition, code = 500, target = "db"),
                "`code` goes with `errors",
            ),
            (quote!(partition, target = ""), "`target` must not be empty"),
            (
                quote!(partition, target = "db", flavor = "fast"),
                "`flavor` = \"fast\"",
            ),
            (
                quote!(partition, code = 70000, target = "db"),
                "`code` = 70000",
            ),
        ] {
            let err = on_a_test(attr.clone()).unwrap_or_else(|| panic!("{attr} expanded"));
            assert!(err.contains(says), "{attr}: {err}");
        }
        let two = error(
            quote!(partition, target = "db"),
            quote!(
                fn t(a: ChaosHarness, b: ChaosHarness) {}
            ),
        );
        assert!(two.unwrap().contains("takes no argument, or one"));
        let sync_flavor = error(
            quote!(partition, target = "db", flavor = "multi_thread"),
            quote!(
                fn t() {}
            ),
        );
        assert!(sync_flavor.unwrap().contains("`flavor` is for async tests"));
    }
}
